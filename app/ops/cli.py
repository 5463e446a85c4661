"""Publish from any other process: a Python function and ``flask --app app publish``."""
import os
import sys
import time
import uuid

import click
import redis
from flask import Blueprint, current_app
from redis.exceptions import RedisClusterException

from ..rooms import keys, messages
from ..rooms.store import Store, unconfirmed
from ..web.fastpost import UNCONFIRMED
from ..webhooks.queue import Outbox
from . import cli_errors, embedded_redis, settings, topology
from .services import services

bp = Blueprint("cli", __name__, cli_group=None)


class Unconfirmed(redis.ConnectionError):
    """The message may or may not have been stored: publish again with ``idempotency_key``
    (the same key returns the original if it was stored, and stores it once if not)."""

    def __init__(self, message, idempotency_key):
        super().__init__(message)
        self.idempotency_key = idempotency_key


def publish(room, text, user, redis_url=None, idempotency_key=None, attempts=3):
    """Store and publish one message from any Python process; return its JSON.

    Uses the same atomic script as HTTP posts. ``redis_url`` defaults to $REDIS_URL. Every
    attempt carries the same idempotency key (a new one unless given), so when an attempt's
    outcome is unknown (a timeout, a connection lost after sending) the next one returns the
    original message if it was stored: up to ``attempts`` in all, ~0.5 s, 1 s... apart.
    Raises messages.Invalid for bad input, Unconfirmed (carrying the key to retry with) when
    the last attempt's outcome is still unknown, redis.RedisError when Redis is unreachable, and
    settings.SettingError when a RIPPLE_ setting it reads is not of its kind.
    """
    url = redis_url or os.environ.get("REDIS_URL") or _embedded_url()
    if not url:
        raise ValueError("publish() needs redis_url or $REDIS_URL (no embedded server's password "
                         "was found under $RIPPLE_EMBEDDED_REDIS_DIR or instance/)")
    history = int(_setting("HISTORY_LENGTH"))
    timeout = float(_setting("REDIS_SOCKET_TIMEOUT"))
    # The service's own way to reach Redis: every URL kind the README documents (plain, unix,
    # rediss, redis+sentinel, redis+cluster), and SPUBLISH on a cluster.
    try:
        client = topology.command_client(url, 2, timeout)
    except RedisClusterException as exc:  # a cluster client connects at once, and says so thus
        raise redis.ConnectionError("cannot reach the Redis cluster: %s" % exc) from exc
    try:
        # Queued for webhooks like every other post (app/webhooks/queue.py).
        outbox = Outbox(client, int(_setting("WEBHOOK_QUEUE_MAX")), atomic=not topology.is_cluster(url))
        # Acknowledged as the service acknowledges a post: once RIPPLE_REPLICA_ACKS replicas have it.
        store = Store(client, history, int(_setting("IDEMPOTENCY_SECONDS")), int(_setting("REPLICA_ACKS")),
                      int(_setting("REPLICA_TIMEOUT_MS")), publish_command=topology.publish_command(url),
                      outbox=outbox)
        return _checked_publish(store, room, text, user, int(_setting("MAX_MESSAGE_CHARS")),
                                idempotency_key, attempts)
    finally:
        topology.close_client(client)


def _embedded_url():
    """The embedded server's URL (password included) when its directory holds one's password,
    as ``flask --app app publish`` finds it; else None."""
    directory = os.environ.get("RIPPLE_EMBEDDED_REDIS_DIR") or os.path.join(
        os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "instance")
    if not os.path.exists(os.path.join(directory, embedded_redis.PASSWORD_FILE)):
        return None
    return embedded_redis.default_url(directory)


def _setting(name):
    """RIPPLE_<name> from the environment, else its default: the same values the service uses
    (read as Flask reads the environment, and checked by the same rules: settings.SettingError
    for a bad one), without building the app."""
    raw = os.environ.get("RIPPLE_" + name)
    if not raw:
        return getattr(settings, name)
    value = settings.from_environ({"RIPPLE_" + name: raw})
    settings.check(value)
    return value[name]


def _checked_publish(store, room, text, user, max_chars, idempotency_key=None, attempts=3):
    canonical = keys.canonical_room(room)
    if canonical is None:
        raise messages.Invalid("Invalid room name %r. %s" % (room, keys.ROOM_RULE), 400)
    room = canonical
    text = messages.check_text(text, max_chars)
    user = messages.check_name(user)
    key = messages.check_idempotency_key(idempotency_key) or uuid.uuid4().hex
    for attempt in range(1, max(1, attempts) + 1):
        try:
            return store.publish(room, user, text, key, bot=True)[0]  # marked: the service speaking
        except redis.RedisError as exc:
            if not unconfirmed(exc):
                raise
            if attempt >= attempts:
                raise Unconfirmed("%s (idempotency key %s): %s" % (UNCONFIRMED, key, exc), key) from exc
            time.sleep(0.5 * attempt)


@bp.cli.command("publish")
@click.argument("room")
@click.argument("text")
@click.option("--user", default="ripple", show_default=True, help="Name shown as the sender.")
@click.option("--idempotency-key", default=None,
              help="Retry key: the same key never stores the message twice (default: a new one).")
def publish_command(room, text, user, idempotency_key):
    """Publish TEXT to ROOM and print the stored message as JSON."""
    try:
        click.echo(_checked_publish(services().store, room, text, user,
                                    current_app.config["MAX_MESSAGE_CHARS"], idempotency_key))
    except messages.Invalid as exc:
        click.echo("error: %s" % exc, err=True)
        sys.exit(2)
    except Unconfirmed as exc:
        click.echo("error: %s. Run the same command again with --idempotency-key %s."
                   % (UNCONFIRMED.rstrip("."), exc.idempotency_key), err=True)
        sys.exit(3)
    except redis.RedisError as exc:
        cli_errors.unreachable(exc)
