"""Operators' room commands: ``flask --app app rooms list|show|delete|ban|unban|trim|export|import``."""
import json
import sys
from datetime import datetime, timezone

import click
import redis
from flask import Blueprint

from ..rooms import archive, census, keys, messages, records
from .cli_errors import one_line_redis_errors, unreachable
from .services import services

bp = Blueprint("rooms_cli", __name__, cli_group="rooms")
one_line_redis_errors(bp.cli)  # whichever step meets a failing Redis
bp.cli.help = "List, moderate, trim, export or import rooms."  # `flask --help` lists the group with it
OPERATOR = ("operator", "operator")  # who the audit record names for a command


@bp.cli.command("list")
def list_command():
    """List rooms: name, visibility, members, messages, last activity (UTC)."""
    with _redis_errors():
        for room in census.summaries(services().redis, census.room_names(services().redis)):
            click.echo("%s\t%s\t%s\t%s\t%s" % (room["room"], room["visibility"], _count(room["members"], "member"),
                                               _count(room["messages"], "message"), _when(room["last"])))


def _count(number, noun):
    return "%d %s%s" % (number, noun, "" if number == 1 else "s")


@bp.cli.command("show")
@click.argument("room")
def show_command(room):
    """Show ROOM's record, members and bans as JSON."""
    room = _room(room)
    with _redis_errors():
        ripple = services()
        record, summary = ripple.rooms.info(room), census.summaries(ripple.redis, [room])[0]
        bans = ripple.moderation.active_bans(room)  # `rooms ban` works on any name, even before the room
        if record is None and not summary["messages"] and not summary["last"] and not bans:
            _fail(2, "There is no room called #%s (no record, no messages, no bans)." % room)
        click.echo(json.dumps({"room": room, "record": record, "summary": summary,
                               "members": ripple.rooms.members(room), "bans": bans},
                              ensure_ascii=False, indent=2))


@bp.cli.command("delete")
@click.argument("room")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def delete_command(room, yes):
    """Delete ROOM: history, record, members; its open streams end (event: room-deleted)."""
    room = _room(room)
    if not yes:
        click.confirm("Delete #%s and all its history?" % room, abort=True)
    with _redis_errors():
        services().moderation.delete(room)
        services().moderation.record(room, *OPERATOR, "delete-room")
    click.echo("deleted #%s" % room)


@bp.cli.command("ban")
@click.argument("room")
@click.argument("user")
@click.option("--seconds", type=click.IntRange(1), default=None, help="For this long (default: for good).")
def ban_command(room, user, seconds):
    """Ban USER (a stable id as messages carry it, token:<id> for a scoped publish token, an
    account name, addr:<address>, or name:<a name>: the guests and bots that post under it)
    from ROOM."""
    room = _room(room)
    if user.startswith(records.GUEST_PREFIX):  # one sign-in's: signing in again would lift it
        _fail(2, "A guest is banned by the name they use: give name:<their name>, not their id.")
    with _redis_errors():
        ripple = services()
        found = ripple.accounts.get(ripple.accounts.id_for(user)) if not user.startswith(("addr:", "name:")) else None
        key, name = (found["id"], found["name"]) if found else (user, user)
        if found is None and user.startswith(records.TOKEN_PREFIX):  # a scoped publish token (a bot)
            key, name = ripple.tokens.of_uid(user)
            if key is None:
                _fail(2, "There is no publish token %s (tokens list shows their ids)." % user)
        if user.startswith("name:"):
            try:
                name = messages.check_name(user[len("name:"):])
            except messages.Invalid as exc:
                _fail(2, str(exc))
            key = records.guest_ban_key(name)
        ban = ripple.moderation.ban(room, key, name, OPERATOR[1], seconds)
        ripple.moderation.record(room, *OPERATOR, "ban", name, "for %d s" % seconds if seconds else "for good")
    click.echo("banned %s from #%s%s" % (name, room, " until " + _when(ban["until"]) if ban["until"] else ""))


@bp.cli.command("unban")
@click.argument("room")
@click.argument("user")
def unban_command(room, user):
    """Lift USER's ban in ROOM (the key the ban lists, an account name, or name:<a guest's name>)."""
    room = _room(room)
    with _redis_errors():
        ripple = services()
        found = ripple.accounts.get(ripple.accounts.id_for(user)) if not user.startswith(("addr:", "name:")) else None
        guest_name = records.guest_ban_key(user[len("name:"):]) if user.startswith("name:") else None
        if not ripple.moderation.unban(room, user) and not (found and ripple.moderation.unban(room, found["id"])) \
                and not (guest_name and ripple.moderation.unban(room, guest_name)):
            _fail(2, "There is no ban on “%s” in #%s." % (user, room))
        ripple.moderation.record(room, *OPERATOR, "unban", user)
    click.echo("unbanned %s in #%s" % (user, room))


@bp.cli.command("trim")
def trim_command():
    """Trim every room's history by age now (RIPPLE_HISTORY_MAX_AGE_DAYS); for cron."""
    retention = services().retention
    if not retention.on:  # a setting, said as a bad setting is: "Error: ...", status 1 (README)
        raise click.ClickException("RIPPLE_HISTORY_MAX_AGE_DAYS is not set: there is no age to trim by.")
    with _redis_errors():
        gone = sum(retention.trim(room) for room in census.room_names(services().redis, 10 ** 6))
    click.echo("trimmed %s" % _count(gone, "message"))


@bp.cli.command("export")
@click.argument("room")
def export_command(room):
    """Write ROOM's history to standard output as NDJSON (ids, authors' ids, edits applied)."""
    room = _room(room)
    with _redis_errors():
        for message in archive.export(services().store, room):
            sys.stdout.write(message + "\n")


@bp.cli.command("import")
@click.argument("room")
@click.argument("source", type=click.File("r", encoding="utf-8"), default="-")
def import_command(room, source):
    """Restore NDJSON from SOURCE (default: standard input) into ROOM, which must have no
    history; ids are kept, so clients' cursors stay valid. Into a name deleted lately, only that
    room's own export, or a file whose ids all come after the deleted room's."""
    room = _room(room)
    with _redis_errors():
        try:
            count = archive.import_lines(services().redis, room, source)
        except archive.NotEmpty:
            _fail(2, "#%s has history already: import only into an empty room." % room)
        except archive.Tombstoned as exc:
            _fail(2, "Nothing imported: #%s was deleted lately, and its messages' ids ran up to %s; this "
                     "file is not that room's export (its messages name another room) and begins at or "
                     "before that id, so the deleted room's readers would resume in it as if it were theirs. "
                     "Import it under another name, or after %s (UTC), when the name forgets the deletion."
                  % (room, exc.gone, _when(records.now_ms() + exc.seconds * 1000)))
        except archive.BadLine as exc:
            _fail(2, "Nothing imported: %s." % exc)
        services().store._touch(room)  # the lobby lists it again
    click.echo("imported %d messages into #%s" % (count, room))


def _room(room):
    canonical = keys.canonical_room(room)
    if canonical is None:
        _fail(2, keys.ROOM_RULE)
    return canonical


def _when(ms):
    if not ms:
        return "-"
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


class _redis_errors:
    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        if isinstance(exc, redis.RedisError):
            unreachable(exc)
        return False


def _fail(code, sentence):
    click.echo("error: %s" % sentence, err=True)
    sys.exit(code)
