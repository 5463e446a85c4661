"""``flask --app app tokens create|list|revoke``: the operator's commands for scoped publish tokens."""
import sys
import time

import click
import redis
from flask import Blueprint

from ..ops.cli_errors import one_line_redis_errors, unreachable
from ..ops.services import services
from ..rooms import messages

bp = Blueprint("tokens_cli", __name__, cli_group="tokens")
one_line_redis_errors(bp.cli)  # whichever step meets a failing Redis
bp.cli.help = "Create, list and revoke publish tokens."  # `flask --help` lists the group with it

SHOWN_ONCE = ("Token “%s” (id %s) created. It is shown only this once and Ripple keeps only its "
              "hash: store it where the bot reads it. Send it as 'Authorization: Bearer <token>'.")
COLUMNS = ("name", "id", "rooms", "post as", "direct", "created", "expires", "last used")


@bp.cli.command("create")
@click.argument("name")
@click.option("--rooms", required=True, metavar="PATTERN",
              help="Rooms it may post in: glob patterns on room names, comma-separated (support-*,ops).")
@click.option("--post-as", "post_as", required=True, multiple=True, metavar="NAME",
              help="A name it may post as (repeat for several; the first is used when a post names none).")
@click.option("--expires", "days", type=click.FloatRange(min=0, min_open=True), default=None, metavar="DAYS",
              help="Days until it stops working (default: until revoked).")
@click.option("--direct", is_flag=True, help="Also allow direct messages (POST /users/<name>/messages).")
def create(name, rooms, post_as, days, direct):
    """Create publish token NAME; print the token (stdout, once) and what it may do (stderr)."""
    tokens = _tokens()
    try:
        token, record = tokens.create(name, rooms, post_as, days, direct)
    except messages.Invalid as exc:
        _fail(str(exc), 2)
    except redis.RedisError as exc:
        unreachable(exc)
    click.echo(token)
    click.echo(SHOWN_ONCE % (record["name"], record["id"]), err=True)
    click.echo(_describe(record), err=True)


@bp.cli.command("list")
def list_tokens():
    """List the publish tokens (never their secrets): name, id, rooms, names, dates."""
    try:
        found = _tokens().list()
    except redis.RedisError as exc:
        unreachable(exc)
    if not found:
        click.echo("No publish tokens. Create one with: flask --app app tokens create NAME "
                   "--rooms PATTERN --post-as NAME", err=True)
        return
    rows = [COLUMNS] + [(t["name"], t["id"], t["rooms"], ",".join(t["post_as"]), "yes" if t["direct"] else "no",
                         _when(t["created"]), _expiry(t["expires"]), _when(t["last_used"]))
                        for t in found]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    for row in rows:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())


@bp.cli.command("revoke")
@click.argument("name_or_id")
def revoke(name_or_id):
    """Revoke a publish token by NAME or ID, on every worker at once."""
    try:
        record = _tokens().revoke(name_or_id)
    except redis.RedisError as exc:
        unreachable(exc)
    if record is None:
        _fail("There is no publish token named or with the id “%s”." % name_or_id, 2)
    click.echo("Revoked “%s” (id %s): posts with it are refused from now on." % (record["name"], record["id"]))


def _tokens():
    return services().tokens


def _describe(record):
    return "May post in rooms matching %s as %s%s; %s." % (
        record["rooms"], ", ".join(record["post_as"]), ", and send direct messages" if record["direct"] else "",
        "expires " + _when(record["expires"]) if record["expires"] else "does not expire")


def _when(ms):
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(ms / 1000)) if ms else "never"


def _expiry(ms):
    if not ms:
        return "never"
    return _when(ms) + (" (expired)" if ms <= time.time() * 1000 else "")


def _fail(sentence, code):
    click.echo("error: %s" % sentence, err=True)
    sys.exit(code)

