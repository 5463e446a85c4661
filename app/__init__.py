"""Ripple: a real-time chat and pub/sub service streaming server-sent events."""
import os
from pathlib import Path

from flask import Flask

from . import api, broker, cli, errors, health, pages, settings
from .stream import Streams


def create_app(test_config=None):
    """Create and configure the chat application."""
    root = Path(__file__).resolve().parent.parent  # static/ and templates/ sit beside app/
    app = Flask(__name__, instance_path=str(root / "instance"), instance_relative_config=True,
                static_folder=str(root / "static"), template_folder=str(root / "templates"))
    app.config.from_object(settings)                       # app/settings.py: UPPERCASE defaults
    if test_config is None:
        app.config.from_pyfile("config.py", silent=True)   # instance/, never committed
        app.config.from_prefixed_env("RIPPLE")             # RIPPLE_HEARTBEAT_SECONDS=15 etc.
        app.config["REDIS_URL"] = os.environ.get("REDIS_URL") or app.config["REDIS_URL"]
    else:
        app.config.update(test_config)
    if not app.config["REDIS_URL"]:
        # The embedded server gunicorn.conf.py starts listens here (see app/embedded_redis.py).
        app.config["REDIS_URL"] = "unix://" + os.path.join(app.instance_path, "redis.sock")
    broker.init_app(app)
    errors.init_app(app)
    app.extensions["streams"] = Streams(app.config["MAX_STREAMS_PER_WORKER"])
    app.register_blueprint(pages.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(cli.bp)
    return app
