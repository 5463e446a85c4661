"""``flask --app app webhooks add|list|remove|enable|disable|log``: the operator's commands."""
import json
import sys
import time

import click
import redis
from flask import Blueprint

from ..ops.cli_errors import one_line_redis_errors, unreachable
from ..ops.services import services
from ..rooms import messages
from . import queue

bp = Blueprint("webhooks_cli", __name__, cli_group="webhooks")
one_line_redis_errors(bp.cli)  # whichever step meets a failing Redis
bp.cli.help = "Add, list, log, pause or remove webhooks."  # `flask --help` lists the group with it

SHOWN_ONCE = ("Webhook %s created. Its signing secret is shown only this once: store it where the "
              "receiver verifies the Ripple-Signature header.")
COLUMNS = ("id", "url", "events", "rooms", "bot", "state", "last success", "last failure")


@bp.cli.command("add")
@click.argument("url")
@click.option("--events", default="message", show_default=True, metavar="KINDS",
              help="Comma-separated: %s." % ",".join(queue.KINDS))
@click.option("--rooms", default="*", show_default=True, metavar="PATTERN",
              help="Rooms whose events it gets: glob patterns, comma-separated (support-*,ops).")
@click.option("--bot", default=None, metavar="NAME",
              help="Post its answers to message events in the room as NAME (a bot).")
def add(url, events, rooms, bot):
    """Register a webhook for URL; print its secret (stdout, once) and what it gets (stderr)."""
    try:
        hook, secret = _hooks().add(url, events, rooms, bot)
    except messages.Invalid as exc:
        _fail(str(exc), 2)
    except redis.RedisError as exc:
        unreachable(exc)
    click.echo(secret)
    click.echo(SHOWN_ONCE % hook["id"], err=True)
    click.echo("It gets %s events from rooms matching %s%s." % (
        ", ".join(hook["events"]), ", ".join(hook["rooms"]),
        "; its answers are posted as %s" % hook["bot"] if hook["bot"] else ""), err=True)


@bp.cli.command("list")
def list_webhooks():
    """List the webhooks (never their secrets)."""
    try:
        found = _hooks().all()
    except redis.RedisError as exc:
        unreachable(exc)
    if not found:
        click.echo("No webhooks. Add one with: flask --app app webhooks add URL --events message --rooms '*'",
                   err=True)
        return
    rows = [COLUMNS] + [(h["id"], h["url"], ",".join(h["events"]), ",".join(h["rooms"]), h["bot"] or "-",
                         "enabled" if h["enabled"] else "DISABLED (%s)" % h["disabled_reason"],
                         _when(h["last_success"]), _when(h["last_failure"])) for h in found]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    for row in rows:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())


@bp.cli.command("remove")
@click.argument("hook_id")
def remove(hook_id):
    """Remove webhook HOOK_ID and everything it had queued."""
    _done(_call("remove", hook_id), "Removed webhook %s (%s): nothing more is sent to it.")


@bp.cli.command("enable")
@click.argument("hook_id")
def enable(hook_id):
    """Enable webhook HOOK_ID again, from the next event on."""
    _done(_call("enable", hook_id), "Enabled webhook %s (%s): it gets events from now on.")


@bp.cli.command("disable")
@click.argument("hook_id")
def disable(hook_id):
    """Stop delivering to webhook HOOK_ID until it is enabled again."""
    hook = _call("get", hook_id)
    if hook is not None:
        _call("disable", hook_id, "Disabled by the operator.")
    _done(hook, "Disabled webhook %s (%s).")


@bp.cli.command("log")
@click.argument("hook_id")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 1000))
def log(hook_id, limit):
    """Print webhook HOOK_ID's newest delivery attempts, one JSON object a line."""
    if _call("get", hook_id) is None:
        _fail("There is no webhook with the id “%s”." % hook_id, 2)
    for attempt in _call("deliveries", hook_id, limit):
        click.echo(json.dumps(attempt, ensure_ascii=False))


def _call(method, *args):
    try:
        return getattr(_hooks(), method)(*args)
    except redis.RedisError as exc:
        unreachable(exc)


def _done(hook, sentence):
    if hook is None:
        _fail("There is no webhook with that id (see: flask --app app webhooks list).", 2)
    click.echo(sentence % (hook["id"], hook["url"]))


def _hooks():
    return services().webhooks.hooks


def _when(ms):
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(ms / 1000)) if ms else "never"


def _fail(sentence, code):
    click.echo("error: %s" % sentence, err=True)
    sys.exit(code)

