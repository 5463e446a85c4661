"""Ripple: a real-time chat and pub/sub service streaming server-sent events.

Where things live (one package per layer; each package's docstring says what it owns and what
it may import):

=================  ==========================================================================
app/delivery/      a stream's life, no Flask: stream (registration, replay, live loop, gap
                   repair), position (the cursor and its rules), listener (the stream's own
                   Redis pub/sub socket), wire (waits and client writes), sse (framing),
                   datastack (gives back the frame-stack pages a stream no longer uses)
app/rooms/         store (Lua publish, history windows), keys (room names, Redis keys,
                   cursors), messages (a message's shape and checks), timeline (page layout),
                   conversation (edits, deletions, reactions, replies), mentions, records
                   (rooms, members, roles), invites, moderation, census, retention, archive
app/people/        identity (sessions, uids), sessions (sign in/out), names (the name rule,
                   claims), accounts, account_views, account_cli, jwts, oidc, tokens,
                   tokens_cli, presence, typing, reading (read positions, unread, sidebar),
                   direct (direct messages), addresses (streams per address)
app/web/           api (room HTTP interface), pages, form_pages, errors, replies (JSON or
                   page), targets (``next``), headers, bodies, fastpost (token posts before
                   Flask), guard (CSRF, rate limits), gate (room access), request_ids, cors,
                   i18n, links, changes, room_views, invite_views, admin_views, reading_views,
                   audit_words (a room's record of actions in words)
app/ops/           settings, topology (where Redis is), services (the extension object),
                   embedded_redis, metrics, outage (outage log), health, cli (publish),
                   rooms_cli, worker (Ripple's gunicorn worker)
app/webhooks/      outgoing webhooks: hooks (registry), queue, signing, sender, dispatcher,
                   pump, service, views, cli
app/__init__.py    create_app: the application factory that wires them together
=================  ==========================================================================
"""
import os
from pathlib import Path

from flask import Flask
from redis.exceptions import RedisClusterException
from werkzeug.middleware.proxy_fix import ProxyFix

from .ops import cli, cli_errors, embedded_redis, health, metrics, rooms_cli, services, settings
from .people import account_cli, account_views, direct, identity, oidc, sessions, tokens, tokens_cli
from .web import (
    admin_views,
    api,
    audit_words,
    bodies,
    changes,
    cors,
    errors,
    fastpost,
    faststream,
    guard,
    headers,
    i18n,
    invite_views,
    links,
    page_scripts,
    pages,
    reading_views,
    request_ids,
    room_views,
)
from .webhooks import service as webhooks


def create_app(test_config=None):
    """Create and configure the chat application."""
    root = Path(__file__).resolve().parent.parent  # static/ and templates/ sit beside app/
    app = Flask(__name__, instance_path=str(root / "instance"), instance_relative_config=True,
                static_folder=str(root / "static"), template_folder=str(root / "templates"))
    app.url_map.merge_slashes = False  # /rooms//messages is a bad room, not a redirect elsewhere
    app.config.from_object(settings)                       # app/ops/settings.py: UPPERCASE defaults
    if test_config is None:
        app.config.from_pyfile("config.py", silent=True)   # instance/, never committed
        app.config.from_prefixed_env("RIPPLE")             # RIPPLE_HEARTBEAT_SECONDS=15 etc.
        app.config["REDIS_URL"] = os.environ.get("REDIS_URL") or app.config["REDIS_URL"]
        try:
            settings.check(app.config)                     # a bad one stops here, named
        except settings.SettingError as exc:
            raise cli_errors.BadSetting(str(exc)) from None
    else:
        app.config.update(test_config)
    if not app.config["REDIS_URL"]:
        # The embedded server gunicorn.conf.py starts listens here (see app/ops/embedded_redis.py).
        app.config["REDIS_URL"] = embedded_redis.default_url(
            os.environ.get("RIPPLE_EMBEDDED_REDIS_DIR") or app.instance_path)
    app.config["SECRET_KEY"] = identity.load_secret_key(app)
    app.session_interface = identity.SessionInterface()
    # An anonymous stream's open skips Flask when its checks let it through (inside ProxyFix:
    # it reads the client's address).
    app.wsgi_app = faststream.FastStream(app, app.wsgi_app)
    if app.config["TRUSTED_PROXIES"]:  # behind nginx: the client's address and scheme
        hops = int(app.config["TRUSTED_PROXIES"])
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)
    # A server-to-server post (the publish token, JSON) skips Flask altogether.
    app.wsgi_app = fastpost.FastPublish(app, app.wsgi_app)
    # Before anything reads it, the whole body arrives within the deadline (or 408).
    app.wsgi_app = bodies.BodyDeadline(app.wsgi_app, app.config["BODY_TIMEOUT_SECONDS"],
                                       app.config["MAX_CONTENT_LENGTH"])
    app.wsgi_app = errors.LastResort(app.wsgi_app)  # outermost: JSON even if a layer fails
    request_ids.init_app(app)
    try:
        services.init_app(app)  # app.extensions["ripple"]: every shared service, built in order
    except RedisClusterException as exc:
        raise cli_errors.ClusterUnreachable(exc, app.config["REDIS_URL"]) from exc
    tokens.init_app(app)  # publish tokens: the global one and scoped ones in Redis
    guard.init_app(app)
    errors.init_app(app)
    i18n.init_app(app)  # the interface language (Flask-Babel): before anything renders a page
    headers.init_app(app)
    page_scripts.init_app(app)  # module_preloads(): a page's scripts asked for at once
    links.init_app(app)  # the linkify filter: http(s) URLs in messages as links
    audit_words.init_app(app)  # the audit_detail filter: a room's record of actions in words
    cors.init_app(app)
    oidc.init_app(app)
    metrics.init_app(app)
    webhooks.init_app(app)  # /admin/webhooks and ``flask webhooks`` (deliveries: gunicorn.conf.py)
    app.register_blueprint(pages.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(changes.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(sessions.bp)
    app.register_blueprint(direct.bp)
    app.register_blueprint(cli.bp)
    app.register_blueprint(tokens_cli.bp)
    app.register_blueprint(account_views.bp)
    app.register_blueprint(oidc.bp)
    app.register_blueprint(account_cli.bp)
    app.register_blueprint(room_views.bp)
    app.register_blueprint(invite_views.bp)
    app.register_blueprint(rooms_cli.bp)
    app.register_blueprint(admin_views.bp)
    app.register_blueprint(reading_views.bp)
    return app
