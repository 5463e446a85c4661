"""Registered webhooks: where events go, which ones, from which rooms, and as which bot.

Redis (all under the ``{webhooks}`` hash tag, app/webhooks/queue.py):
- ``ripple:{webhooks}:h:<id>`` hash: url, secret, events (comma-separated kinds), rooms
  (comma-separated glob patterns on canonical room names), bot (a name, or ""), created (ms),
  disabled (ms, "" when enabled), disabled_reason, failing_since (ms of the first failure since
  the last success, "" when healthy), last_success, last_failure (ms).
- ``ripple:{webhooks}:all`` set of ids; consumer group ``h:<id>`` on the events stream.

The secret signs every delivery (app/webhooks/signing.py): Redis keeps it as is, since signing
needs it; it is shown once when the webhook is made, never listed.
"""
import json
import secrets
import time
import unicodedata
import urllib.parse

from ..ops.topology import redacted
from ..people import tokens
from ..rooms import messages
from . import queue

MAX_URL = 2048
MAX_HOOKS = 100  # webhooks one service may have: each costs every worker a greenlet

# Marks a sentence for the catalogue (`make messages`); the admin API answers in the reader's
# language (app/webhooks/views.py), the CLI in English.
N_ = str
URL_RULE = N_("The URL must be an absolute http:// or https:// address with a host, at most 2048 characters.")
EVENTS_RULE = N_("Events are a comma-separated list of: message, edit, delete, reaction, mention, join, leave.")
TOO_MANY = N_("There are 100 webhooks already, the most this service keeps; remove one first.")


def record_key(hook_id):
    return "%s:h:%s" % (queue.TAG, hook_id)


def retry_key(hook_id):
    """Sorted set: event id -> when its next attempt is due (ms)."""
    return record_key(hook_id) + ":retry"


def held_key(hook_id):
    """Hash: event id -> the event and its attempts so far (JSON), while it waits for a retry."""
    return record_key(hook_id) + ":held"


def log_key(hook_id):
    """List: the newest delivery attempts first (JSON), capped."""
    return record_key(hook_id) + ":log"


def check_url(url):
    """Return ``url`` if webhooks may post to it, else raise messages.Invalid (400). A
    ``user:password@`` is kept (sent as Basic auth) and never shown (``redacted``)."""
    if not isinstance(url, str) or len(url) > MAX_URL:
        raise messages.Invalid(URL_RULE, 400)
    url = url.strip()
    try:
        parts = urllib.parse.urlsplit(url)  # raises ValueError for a bracketed host left open
        parts.port  # noqa: B018 - raises ValueError for a port that is not one
    except ValueError:
        raise messages.Invalid(URL_RULE, 400) from None
    if parts.scheme not in ("http", "https") or not parts.hostname or any(
            ch.isspace() or unicodedata.category(ch) == "Cc" for ch in url):
        raise messages.Invalid(URL_RULE, 400)
    return url


def check_events(events):
    """Return the event kinds in ``events`` (a comma-separated string or a list), in order."""
    if isinstance(events, str):
        events = events.split(",")
    if not isinstance(events, (list, tuple)) or not all(isinstance(e, str) for e in events):
        raise messages.Invalid(EVENTS_RULE, 400)
    kinds = tuple(dict.fromkeys(e.strip().lower() for e in events if e.strip()))
    if not kinds or any(kind not in queue.KINDS for kind in kinds):
        raise messages.Invalid(EVENTS_RULE, 400)
    return kinds


class Hooks:
    """The registry of webhooks in Redis (``client``: decode_responses=True)."""

    def __init__(self, client):
        self.redis = client

    def add(self, url, events="message", rooms="*", bot=None):
        """Register a webhook; return (its dict, the secret). Deliveries start with the next
        event. Raises messages.Invalid for a bad URL, event list, room pattern or bot name."""
        url, kinds = check_url(url), check_events(events)
        if not isinstance(rooms, str):  # a list of patterns: strings only (a number is no room)
            if not isinstance(rooms, (list, tuple)) or not all(isinstance(r, str) for r in rooms):
                raise messages.Invalid(tokens.PATTERN_RULE, 400)
            rooms = ",".join(rooms)
        patterns = tokens.parse_patterns(rooms)
        bot = messages.check_name(bot) if bot not in (None, "") else ""
        if self.redis.scard(queue.ALL) >= MAX_HOOKS:
            raise messages.Invalid(TOO_MANY, 409)
        hook_id = secrets.token_hex(8)
        secret = "whsec_" + secrets.token_urlsafe(32)
        record = {"url": url, "secret": secret, "events": ",".join(kinds), "rooms": ",".join(patterns),
                  "bot": bot, "created": str(_now()), "disabled": "", "disabled_reason": "",
                  "failing_since": "", "last_success": "", "last_failure": ""}
        with self.redis.pipeline(transaction=True) as pipe:  # one slot: all or nothing
            pipe.hset(record_key(hook_id), mapping=record)
            # "$": the webhook gets what happens from now on, nothing from before.
            pipe.xgroup_create(queue.EVENTS, queue.group(hook_id), id="$", mkstream=True)
            pipe.sadd(queue.ALL, hook_id)
            pipe.execute()
        return shown(hook_id, record), secret

    def get(self, hook_id, secret=False):
        """The webhook's dict (with its ``secret`` when asked), or None."""
        if not isinstance(hook_id, str) or not hook_id.isalnum() or len(hook_id) > 32:
            return None
        record = self.redis.hgetall(record_key(hook_id))
        if not record.get("url"):
            return None
        found = shown(hook_id, record)
        if secret:
            found["secret"], found["target"] = record["secret"], record["url"]
        return found

    def all(self, secrets_too=False):
        """Every webhook, oldest first; ``secrets_too``: with its ``secret`` and ``target`` (the
        URL as given, credentials and all: for sending only, never shown)."""
        ids = sorted(self.redis.smembers(queue.ALL))
        with self.redis.pipeline(transaction=False) as pipe:
            for hook_id in ids:
                pipe.hgetall(record_key(hook_id))
            records = pipe.execute()
        found = []
        for hook_id, record in zip(ids, records):
            if record.get("url"):
                hook = shown(hook_id, record)
                if secrets_too:
                    hook["secret"], hook["target"] = record["secret"], record["url"]
                found.append(hook)
        return sorted(found, key=lambda h: (h["created"], h["id"]))

    def remove(self, hook_id):
        """Delete a webhook and what it had queued; return its dict, or None if there was none."""
        hook = self.get(hook_id)
        if hook is None:
            return None
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.srem(queue.ALL, hook_id)
            pipe.delete(record_key(hook_id), retry_key(hook_id), held_key(hook_id), log_key(hook_id))
            pipe.xgroup_destroy(queue.EVENTS, queue.group(hook_id))
            pipe.execute(raise_on_error=False)  # the group may be gone already
        return hook

    def deliveries(self, hook_id, limit=100):
        """The newest ``limit`` delivery attempts, newest first: dicts with delivery (id), event,
        room, attempt (1, 2...), at (ms), status (HTTP, or None when no answer came),
        latency_ms, error, outcome (delivered, retrying, failed, gave_up), next_attempt (ms or
        None) and reply (a bot's answer: "posted", why not, or None)."""
        return [json.loads(item) for item in self.redis.lrange(log_key(hook_id), 0, limit - 1)]

    def disable(self, hook_id, reason):
        self.redis.hset(record_key(hook_id), mapping={"disabled": str(_now()), "disabled_reason": reason})

    def enable(self, hook_id):
        """Enable a disabled webhook again, from the next event on (what happened meanwhile and
        what waited for a retry is dropped); return its dict, or None."""
        if self.get(hook_id) is None:
            return None
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(record_key(hook_id), mapping={"disabled": "", "disabled_reason": "", "failing_since": ""})
            pipe.delete(retry_key(hook_id), held_key(hook_id))
            pipe.xgroup_destroy(queue.EVENTS, queue.group(hook_id))
            pipe.xgroup_create(queue.EVENTS, queue.group(hook_id), id="$", mkstream=True)
            pipe.execute(raise_on_error=False)
        return self.get(hook_id)


def shown(hook_id, record):
    """A webhook as the API and the CLI show it (never its secret, nor a password in its URL)."""
    def ms(name):
        return int(record.get(name) or 0) or None
    return {"id": hook_id, "url": redacted(record.get("url", "")), "events": (record.get("events") or "").split(","),
            "rooms": (record.get("rooms") or "").split(","), "bot": record.get("bot") or None,
            "created": ms("created"), "enabled": not record.get("disabled"), "disabled": ms("disabled"),
            "disabled_reason": record.get("disabled_reason") or None, "failing_since": ms("failing_since"),
            "last_success": ms("last_success"), "last_failure": ms("last_failure")}


def _now():
    return int(time.time() * 1000)
