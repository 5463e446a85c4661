"""Operators' commands say an unreachable Redis in one line, never with a traceback."""
import os
import sys

import click
import redis
from flask import current_app
from flask.cli import ScriptInfo
from redis.exceptions import RedisClusterException

from . import settings, topology


class BadSetting(settings.SettingError, click.ClickException):
    """A setting the app cannot be made with. A ``flask`` command says it as click says any
    refusal, in one line ("Error: RIPPLE_HISTORY_LENGTH must be ...", status 1), where it was a
    traceback through Flask's loading of the app; under Gunicorn the master has said it first."""

    def __init__(self, message):
        click.ClickException.__init__(self, message)


class ClusterUnreachable(click.ClickException):
    """No node of a Redis Cluster answered while the app was made (RedisCluster asks them at
    once): a ``flask`` command says so in one line, as ``unreachable`` does mid-command."""

    def __init__(self, exc, url):
        super().__init__("Redis is unreachable at %s: %s" % (topology.redacted(url), exc))


def unreachable(exc, url=None):
    """Say ``exc`` (a redis.RedisError) as "error: Redis is unreachable at <url>: ..." (or, for
    an AuthenticationError, "... refused the password ...") on standard error and exit with
    status 1. The URL is the app's ``REDIS_URL`` unless given, shown
    without its password (``topology.redacted``)."""
    url = current_app.config["REDIS_URL"] if url is None else url
    if isinstance(exc, redis.AuthenticationError):  # it answered: the password is the trouble
        click.echo("error: Redis at %s refused the password (REDIS_URL's): %s" % (topology.redacted(url), exc),
                   err=True)
    else:
        click.echo("error: Redis is unreachable at %s: %s" % (topology.redacted(url), exc), err=True)
    sys.exit(1)


def one_line_redis_errors(group):
    """Make every command of ``group`` (a click Group: a blueprint's ``cli``) answer a Redis
    failure with ``unreachable``, whichever of its steps meets it. Returns ``group``."""
    invoke = group.invoke

    def guarded(ctx):
        try:
            return invoke(ctx)
        except redis.RedisError as exc:  # raised out of the command's app context: enter it again
            with ctx.ensure_object(ScriptInfo).load_app().app_context():
                unreachable(exc)
        except RedisClusterException as exc:  # a Cluster's nodes are asked as the app is made
            unreachable(exc, os.environ.get("REDIS_URL", ""))

    group.invoke = guarded
    return group
