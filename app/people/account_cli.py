"""Operators' account commands: ``flask --app app accounts create|disable|enable|list``."""
import sys

import click
import redis
from flask import Blueprint

from ..ops.cli_errors import one_line_redis_errors, unreachable
from ..ops.services import services
from ..rooms import messages
from . import accounts, identity

bp = Blueprint("account_cli", __name__, cli_group="accounts")
one_line_redis_errors(bp.cli)  # whichever step meets a failing Redis
bp.cli.help = "Create, list, disable and enable accounts."  # `flask --help` lists the group with it


@bp.cli.command("create")
@click.argument("name")
@click.option("--admin", is_flag=True, help="Make the account an administrator.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input's first line.")
def create_command(name, admin, password_stdin):
    """Create an account NAME (prompts for its password)."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        name = messages.check_name(name)
        account = _accounts().create(name, password, admin=admin)
    except (messages.Invalid, accounts.Invalid) as exc:
        _fail(2, str(exc))
    except accounts.NameInUse:
        _fail(2, "“%s” (or a name that looks the same) is taken by an account or in use right now." % name)
    except redis.RedisError as exc:
        unreachable(exc)
    click.echo("created %s%s id=%s" % (account["name"], " (admin)" if account["admin"] else "", account["id"]))


@bp.cli.command("disable")
@click.argument("name")
def disable_command(name):
    """Disable account NAME: its sessions and open streams end at once, everywhere."""
    account = _find(name)
    ended = identity.disable_account(account["id"])
    click.echo("disabled %s (%d session%s ended)" % (account["name"], ended, "" if ended == 1 else "s"))


@bp.cli.command("enable")
@click.argument("name")
def enable_command(name):
    """Enable account NAME again."""
    account = _find(name)
    identity.disable_account(account["id"], False)
    click.echo("enabled %s" % account["name"])


@bp.cli.command("list")
def list_command():
    """List every account: name, id, role and state."""
    for account in _accounts().all():
        click.echo("%s\t%s\t%s\t%s" % (account["name"], account["id"], "admin" if account["admin"] else "-",
                                       "disabled" if account["disabled"] else "active"))


def _accounts():
    return services().accounts


def _find(name):
    try:
        account = _accounts().get(_accounts().id_for(name))
    except redis.RedisError as exc:
        unreachable(exc)
    if account is None:
        _fail(2, "There is no account called “%s”." % name)
    return account


def _fail(code, sentence):
    click.echo("error: %s" % sentence, err=True)
    sys.exit(code)
