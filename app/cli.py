"""Publish from any other process: a Python function and ``flask --app app publish``."""
import os
import sys

import click
import redis
from flask import Blueprint, current_app

from . import broker, keys, messages, settings
from .store import Store

bp = Blueprint("cli", __name__, cli_group=None)


def publish(room, text, user, redis_url=None):
    """Store and publish one message from any Python process; return its JSON.

    Uses the same atomic script as HTTP posts. ``redis_url`` defaults to $REDIS_URL.
    Raises messages.Invalid for bad input and redis.RedisError when Redis is unreachable.
    """
    url = redis_url or os.environ.get("REDIS_URL")
    if not url:
        raise ValueError("publish() needs redis_url or $REDIS_URL")
    history = int(os.environ.get("RIPPLE_HISTORY_LENGTH", settings.HISTORY_LENGTH))
    with redis.Redis.from_url(url, decode_responses=True) as client:
        store = Store(client, history, settings.IDEMPOTENCY_SECONDS)
        return _checked_publish(store, room, text, user, settings.MAX_MESSAGE_CHARS)


def _checked_publish(store, room, text, user, max_chars):
    if not keys.valid_room(room):
        raise messages.Invalid("Invalid room name %r: use 1-64 characters of a-z, 0-9, _ and -." % room, 400)
    text = messages.check_text(text, max_chars)
    user = messages.check_name(user)
    return store.publish(room, user, text)[0]


@bp.cli.command("publish")
@click.argument("room")
@click.argument("text")
@click.option("--user", default="ripple", show_default=True, help="Name shown as the sender.")
def publish_command(room, text, user):
    """Publish TEXT to ROOM and print the stored message as JSON."""
    try:
        click.echo(_checked_publish(broker.get_store(), room, text, user,
                                    current_app.config["MAX_MESSAGE_CHARS"]))
    except messages.Invalid as exc:
        click.echo("error: %s" % exc, err=True)
        sys.exit(2)
    except redis.RedisError as exc:
        click.echo("error: Redis is unreachable at %s: %s" % (current_app.config["REDIS_URL"], exc), err=True)
        sys.exit(1)
