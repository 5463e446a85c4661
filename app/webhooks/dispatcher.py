"""Delivering webhook events from inside the running service: greenlets in every gunicorn worker.

Per worker: a supervisor (which webhooks exist, trims the queue), a waker (one blocking read on
the queue, so new events go out at once) and one pump per enabled webhook. A pump reads its
webhook's consumer group and delivers up to RIPPLE_WEBHOOK_CONCURRENCY events at once. All of it
is I/O on gevent: a slow or dead endpoint holds only its own pump's greenlets, never a stream or
another webhook's pump.

The life of one event for one webhook (at least once, each attempt signed afresh):
1. XREADGROUP hands it to one worker's pump: pending in the group under that worker's name.
2. Delivered (2xx): XACK. A retryable failure: one script XACKs it and parks it in the webhook's
   retry set (due time = exponential backoff with jitter, at least the Retry-After asked for),
   with its attempts so far. Not retryable, or past RIPPLE_WEBHOOK_RETRY_HOURS: XACK, logged.
3. A due retry is leased by one script (its due time pushed one lease ahead) and attempted;
   then finished or parked again as above.
4. A worker that dies mid-attempt leaves the event pending (step 1) or its lease running (step
   3): after one lease (twice the attempt deadline, plus 5 s) another worker's pump takes it over,
   by XAUTOCLAIM or by the lease's expiry, and delivers it. Receivers de-duplicate by the
   Ripple-Delivery-Id, which every attempt of one event to one webhook shares.
"""
import fnmatch
import json
import logging
import os
import random
import socket
import time

import gevent
import redis
import requests

from ..ops import outage
from ..rooms import keys, messages, records
from . import hooks, queue, sender, signing
from .pump import IDLE_WAIT_SECONDS, LEASE_LUA, REGROUP_LUA, Pump

logger = logging.getLogger(__name__)

REFRESH_SECONDS = 2.0   # how soon a worker notices a webhook added, removed or disabled
TRIM_SECONDS = 60.0     # how often one worker trims the queue below what every webhook finished
MAX_DELAY_SECONDS = 3600.0  # backoff never waits longer than this between two attempts
DISABLED = "It failed every delivery for %g hours."

# KEYS: events, retry, held.  ARGV: group, event id, due (ms), held JSON, "1" when the event is
# still pending in the group (a first attempt).  Park an event for a later attempt.
_PARK_LUA = """
if ARGV[5] == '1' then redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) end
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[2])
redis.call('HSET', KEYS[3], ARGV[2], ARGV[4])
"""

# KEYS: the webhook's record.  ARGV: now (ms), disable after (ms), reason.  Note a failure;
# disable the webhook when it has failed since long enough. Returns 1 when it disabled it now.
_FAILED_LUA = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'last_failure', ARGV[1])
local since = tonumber(redis.call('HGET', KEYS[1], 'failing_since') or '')
if not since then redis.call('HSET', KEYS[1], 'failing_since', ARGV[1]); return 0 end
if tonumber(ARGV[1]) - since >= tonumber(ARGV[2]) and (redis.call('HGET', KEYS[1], 'disabled') or '') == '' then
  redis.call('HSET', KEYS[1], 'disabled', ARGV[1], 'disabled_reason', ARGV[3])
  return 1
end
return 0
"""


class Dispatcher:
    """Every webhook's deliveries in this worker. Built by the app factory; ``start`` runs it
    (gunicorn.conf.py calls it in each worker, after gevent patched the process)."""

    def __init__(self, client, registry, store, cfg, conversation=None):
        self.redis, self.hooks, self.store = client, registry, store
        self.conversation = conversation  # the message a bot's answer replies to (app/rooms/conversation.py)
        self.timeout = float(cfg["WEBHOOK_TIMEOUT_SECONDS"])
        self.retry_ms = float(cfg["WEBHOOK_RETRY_HOURS"]) * 3600000
        self.disable_ms = float(cfg["WEBHOOK_DISABLE_HOURS"]) * 3600000
        self.base_delay = float(cfg["WEBHOOK_RETRY_BASE_SECONDS"])
        self.max_bytes = int(cfg["WEBHOOK_MAX_RESPONSE_BYTES"])
        self.log_length = int(cfg["WEBHOOK_LOG_LENGTH"])
        self.concurrency = max(1, int(cfg["WEBHOOK_CONCURRENCY"]))
        self.max_chars = int(cfg["MAX_MESSAGE_CHARS"])
        self.lease_ms = int((2 * self.timeout + 5) * 1000)
        self.pumps = {}  # webhook id -> Pump
        self.outage = None  # the worker's OutageLog (app/ops/services.py): the loops' Redis failures go there
        self.metrics = None  # the app's Metrics (app/ops/services.py): attempts counted by outcome
        self.consumer = None
        self.session = None
        self._park = client.register_script(_PARK_LUA)
        self.lease = client.register_script(LEASE_LUA)
        self.regroup = client.register_script(REGROUP_LUA)
        self._failed = client.register_script(_FAILED_LUA)
        self._greenlets = []
        self._ban_logged = set()  # (webhook id, room): a banned bot's skipped answers, logged once

    def start(self):
        """Start delivering in this process (idempotent)."""
        if self._greenlets:
            return
        self.consumer = "%s:%d" % (socket.gethostname(), os.getpid())  # after the fork
        self.session = requests.Session()
        self._greenlets = [gevent.spawn(self._supervise), gevent.spawn(self._wake)]

    def stop(self):
        for pump in self.pumps.values():
            pump.stopped = True
        gevent.killall(self._greenlets + [p.greenlet for p in self.pumps.values()], block=False)
        self._greenlets, self.pumps = [], {}

    # --- the worker's own loops ---

    def _supervise(self):
        next_trim = time.monotonic() + random.uniform(0, TRIM_SECONDS)  # workers trim at different times
        while True:
            try:
                self.refresh()
                if time.monotonic() >= next_trim:
                    next_trim = time.monotonic() + TRIM_SECONDS
                    self.trim()
                outage.ok_round(self.outage)
            except redis.RedisError as exc:
                outage.failed_round(self.outage, "webhooks.supervisor", exc, logger)
            except Exception:  # noqa: BLE001 - the loop must outlive any one fault; logged
                logger.exception("webhooks: supervisor step failed")
            gevent.sleep(REFRESH_SECONDS)

    def refresh(self):
        """Start a pump for each enabled webhook, stop those of the removed or disabled ones."""
        current = {h["id"]: h for h in self.hooks.all(secrets_too=True) if h["enabled"]}
        for hook_id in list(self.pumps):
            if hook_id not in current:
                self.pumps.pop(hook_id).stopped = True
        for hook_id, hook in current.items():
            if hook_id in self.pumps:
                self.pumps[hook_id].hook = hook
            else:
                self.pumps[hook_id] = Pump(self, hook)

    def _wake(self):
        last = "$"
        while True:
            if not self.pumps:
                gevent.sleep(IDLE_WAIT_SECONDS)
                continue
            try:
                found = self.redis.xread({queue.EVENTS: last}, count=100, block=2000)
            except redis.RedisError:
                gevent.sleep(IDLE_WAIT_SECONDS)
                continue
            if found:
                last = found[0][1][-1][0]
                for pump in list(self.pumps.values()):
                    pump.wake.set()

    def trim(self):
        """Trim the queue below the oldest event a webhook that is not disabled has not finished
        (one worker at a time); forget consumers (dead workers) idle for an hour with nothing
        pending. Returns the entries trimmed.

        Never past the newest entry read before the groups were: a webhook added (or enabled)
        meanwhile starts after it, and must find everything after it still there.
        """
        if not self.redis.set(queue.TAG + ":trimming", self.consumer, nx=True, px=int(TRIM_SECONDS * 800)):
            return 0
        newest = self.redis.xrevrange(queue.EVENTS, count=1)
        if not newest:
            return 0  # no queue yet, or an empty one
        floor = keys.parse_stream_id(newest[0][0])
        groups = self.redis.xinfo_groups(queue.EVENTS)
        registered = {queue.group(h["id"]): h for h in self.hooks.all()}  # read after the groups
        for info in groups:
            name = info["name"]
            if name not in registered:  # its webhook was removed (add makes both in one step)
                self.redis.xgroup_destroy(queue.EVENTS, name)
                continue
            if not registered[name]["enabled"]:
                continue  # it starts again from new events when it is enabled
            position = keys.parse_stream_id(info["last-delivered-id"])
            if info["pending"]:
                oldest = self.redis.xpending(queue.EVENTS, name)["min"]
                position = min(position, keys.parse_stream_id(oldest))
            floor = min(floor, position)
            for consumer in self.redis.xinfo_consumers(queue.EVENTS, name):
                if not consumer["pending"] and consumer["idle"] > 3600000:
                    self.redis.xgroup_delconsumer(queue.EVENTS, name, consumer["name"])
        return self.redis.xtrim(queue.EVENTS, minid=keys.format_stream_id(floor), approximate=False)

    def queue_depths(self):
        """What each enabled webhook has not finished, from one XINFO GROUPS of the queue and
        one ZCARD per webhook (after a read of the webhooks): ``[(webhook id, waiting,
        in_flight, retrying)]``: ``waiting`` the events not yet handed to a delivery (the group's
        ``lag``; None when Redis cannot tell: Redis < 7, or entries deleted inside the range),
        ``in_flight`` those handed out whose first attempt is under way, ``retrying`` those
        parked for a later attempt (a receiver down or refusing). Raises redis.RedisError."""
        enabled = [h["id"] for h in self.hooks.all() if h["enabled"]]
        if not enabled:
            return []
        groups = {info["name"]: info for info in self.redis.xinfo_groups(queue.EVENTS)}
        with self.redis.pipeline(transaction=False) as pipe:
            for hook_id in enabled:
                pipe.zcard(hooks.retry_key(hook_id))
            parked = pipe.execute()
        found = []
        for hook_id, retrying in zip(enabled, parked):
            info = groups.get(queue.group(hook_id), {})
            found.append((hook_id, info.get("lag", 0 if not info else None), int(info.get("pending", 0)), retrying))
        return found

    # --- one event, one webhook ---

    def deliver(self, hook, entry):
        """Attempt one event (an Entry) for ``hook``; record the outcome."""
        hook_id = hook["id"]
        kind, room, data = entry.fields.get("k"), entry.fields.get("r", ""), entry.fields.get("j", "{}")
        message = json.loads(data) if kind == "message" else None
        if not wanted(hook, kind, room, message):
            self.finish(hook_id, entry)
            return
        delivery_id = "%s-%s" % (hook_id, entry.id)
        body = ('{"id":%s,"type":%s,"webhook":%s,"room":%s,"created":%s,"data":%s}' % (
            json.dumps(delivery_id), json.dumps(kind), json.dumps(hook_id), json.dumps(room, ensure_ascii=False),
            entry.id.split("-", 1)[0], data)).encode()
        headers = {"Content-Type": "application/json", **signing.headers(hook["secret"], delivery_id, kind, body)}
        outcome = sender.send(self.session, hook["target"], body, headers, self.timeout, self.max_bytes)
        attempt, now = entry.attempts + 1, _now()
        record = {"delivery": delivery_id, "event": kind, "room": room, "attempt": attempt, "at": now,
                  "status": outcome.status, "latency_ms": outcome.latency_ms, "error": outcome.error,
                  "next_attempt": None, "reply": None}
        if outcome.delivered:
            self.finish(hook_id, entry)
            self.redis.hset(hooks.record_key(hook_id), mapping={"last_success": now, "failing_since": ""})
            record["outcome"] = "delivered"
            record["reply"] = self.reply(hook, room, message, delivery_id, outcome)
        else:
            first = entry.first or now
            delay = self.backoff(attempt, outcome.retry_after)
            if outcome.retry and now + delay * 1000 <= first + self.retry_ms:
                record["outcome"], record["next_attempt"] = "retrying", int(now + delay * 1000)
                held = json.dumps({"fields": entry.fields, "attempts": attempt, "first": first})
                self._park(keys=[queue.EVENTS, hooks.retry_key(hook_id), hooks.held_key(hook_id)],
                           args=[queue.group(hook_id), entry.id, record["next_attempt"], held,
                                 "0" if entry.parked else "1"])
            else:
                record["outcome"] = "gave_up" if outcome.retry else "failed"
                self.finish(hook_id, entry)
        if self.metrics is not None:
            self.metrics.webhook_attempts.labels(record["outcome"]).inc()
        # Logged before the failure is counted: a webhook shown disabled has its last attempt listed.
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.lpush(hooks.log_key(hook_id), json.dumps(record, ensure_ascii=False))
            pipe.ltrim(hooks.log_key(hook_id), 0, self.log_length - 1)
            pipe.execute()
        if not outcome.delivered:
            hours = self.disable_ms / 3600000
            if self._failed(keys=[hooks.record_key(hook_id)], args=[now, int(self.disable_ms), DISABLED % hours]):
                logger.warning("webhook disabled: failing for %g hours id=%s url=%s", hours, hook_id, hook["url"])

    def backoff(self, attempt, asked=None):
        """Seconds before attempt ``attempt + 1``: base x 2^(attempt-1), capped at an hour, with
        +-25 % jitter (a crowd of retries spreads out), and never sooner than ``asked``."""
        delay = min(MAX_DELAY_SECONDS, self.base_delay * 2 ** min(attempt - 1, 30))
        delay *= random.uniform(0.75, 1.25)
        return max(delay, asked or 0.0)

    def finish(self, hook_id, entry):
        """Done with an event for this webhook: delivered, unwanted, or given up."""
        if entry.parked:
            with self.redis.pipeline(transaction=True) as pipe:
                pipe.zrem(hooks.retry_key(hook_id), entry.id)
                pipe.hdel(hooks.held_key(hook_id), entry.id)
                pipe.execute()
        else:
            self.redis.xack(queue.EVENTS, queue.group(hook_id), entry.id)

    def reply(self, hook, room, message, delivery_id, outcome):
        """Post a bot's answer to a message event in the room; return what happened (a short
        sentence for the delivery log), or None when the answer asked for nothing."""
        if message is None or not hook.get("bot") or not outcome.body:
            return None
        if outcome.content_type.partition(";")[0].strip().lower() != "application/json":
            return None
        try:
            answer = json.loads(outcome.body)
        except (ValueError, RecursionError):  # deep nesting too: a receiver's answer is anything
            return "Not posted: the answer is not valid JSON."
        if not isinstance(answer, dict) or "text" not in answer:
            return None
        if str(message.get("uid", "")).startswith("webhook:"):
            return "Not posted: bots do not answer bots (the message came from a webhook)."
        try:
            if self.banned(room, hook):
                return "Not posted: #%s bans the bot's name (%s)." % (room, hook["bot"])
        except redis.RedisError:
            return "Not posted: the message store is unavailable."
        try:
            text = messages.check_text(answer["text"], self.max_chars)
            quote = self.quote(room, answer.get("reply_to"))
            # The delivery id as idempotency key: a repeated delivery posts the answer once.
            self.store.publish(room, hook["bot"], text, idempotency_key="webhook:" + delivery_id,
                               bot=True, uid="webhook:" + hook["id"], reply_to=quote)
        except messages.KeyReused:  # a redelivery whose receiver answered differently this time
            return "posted (the answer to this delivery's first attempt stands)"
        except messages.Invalid as exc:
            return "Not posted: %s" % exc
        except redis.RedisError:
            return "Not posted: the message store is unavailable."
        return "posted"

    def banned(self, room, hook):
        """Tell whether ``room`` bans ``hook``'s bot: its name ("name:<name>", the key that
        stops a guest or a scoped token posting under it) or its uid "webhook:<id>", read as the
        post path reads a ban (records.ban_fields, access_from). Logged once per room and worker."""
        uid = records.WEBHOOK_PREFIX + hook["id"]
        found = self.redis.hmget(records.RecordKeys(room).bans, *records.ban_fields(uid, None, hook["bot"]))
        ban = records.access_from(uid, (None, None, None), None, found).ban
        if ban is None:
            self._ban_logged.discard((hook["id"], room))  # lifted: a new ban is logged again
        elif (hook["id"], room) not in self._ban_logged:
            if len(self._ban_logged) > 10000:
                self._ban_logged.clear()
            self._ban_logged.add((hook["id"], room))
            logger.warning("webhook answer not posted: the room bans its bot id=%s room=%s bot=%s",
                           hook["id"], room, hook["bot"])
        return ban is not None

    def quote(self, room, reply_to):
        """The quote of the message a bot's answer replies to (messages.quote), or None; raises
        messages.Invalid for an id that is not one of the room's messages."""
        if reply_to is None:
            return None
        if not isinstance(reply_to, str) or keys.parse_stream_id(reply_to) is None:
            raise messages.Invalid("reply_to must be a message id such as 1732371730000-0.", 400)
        found = self.conversation.message(room, reply_to) if self.conversation is not None else None
        if found is None or found.get("deleted"):
            raise messages.Invalid("reply_to names no message of this room (or a deleted one).", 404)
        return messages.quote(found)


def wanted(hook, kind, room, message):
    """Tell whether ``hook`` takes this event: its kind, a room matching its patterns, and not a
    message its own bot posted."""
    if kind not in hook["events"] or not any(_matches(room, p) for p in hook["rooms"]):
        return False
    return not (message is not None and message.get("uid") == "webhook:" + hook["id"])


def _matches(room, pattern):
    return fnmatch.fnmatchcase(room, pattern)


def _now():
    return int(time.time() * 1000)
