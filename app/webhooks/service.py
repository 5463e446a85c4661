"""The webhooks as one service of the app: the registry, the queue and this worker's deliveries."""
from ..ops import topology
from .dispatcher import Dispatcher
from .hooks import Hooks
from .queue import Outbox


class Webhooks:
    """``hooks`` (the registry), ``outbox`` (``emit`` puts an event in the queue) and
    ``dispatcher`` (delivers; started in each gunicorn worker by gunicorn.conf.py)."""

    def __init__(self, hooks, outbox, dispatcher):
        self.hooks, self.outbox, self.dispatcher = hooks, outbox, dispatcher

    def emit(self, kind, room, data):
        """Queue one event for the webhooks (see queue.Outbox.emit)."""
        return self.outbox.emit(kind, room, data)


def outbox(client, cfg):
    """The queue the store writes room messages into (inside its own script unless on a Redis
    Cluster, where the room's slot is not the queue's)."""
    return Outbox(client, cfg["WEBHOOK_QUEUE_MAX"], atomic=not topology.is_cluster(cfg["REDIS_URL"]))


def build(client, store, box, cfg, conversation=None):
    """The app's Webhooks (app/ops/services.py builds it); no I/O."""
    registry = Hooks(client)
    return Webhooks(registry, box, Dispatcher(client, registry, store, cfg, conversation))


def init_app(app):
    """Add the admin API (/admin/webhooks) and ``flask webhooks``."""
    from . import cli, views  # here: the views import the web layer, which imports the services
    app.register_blueprint(views.bp)
    app.register_blueprint(cli.bp)
