"""One webhook's deliveries in one worker: what to attempt next, a few at a time.

Each step gathers up to RIPPLE_WEBHOOK_CONCURRENCY events, oldest duties first: a dead worker's
(pending in the webhook's consumer group longer than a lease: XAUTOCLAIM), retries now due
(leased from the webhook's retry set, so one worker takes each), then new ones (XREADGROUP),
and attempts them at once (Dispatcher.deliver). app/webhooks/dispatcher.py says how an event
lives and how nothing is lost.
"""
import json
import logging
import time

import gevent
import gevent.event
import redis

from ..ops import outage
from . import hooks, queue

logger = logging.getLogger(__name__)

IDLE_WAIT_SECONDS = 1.0  # a pump with nothing to do looks again after this (due retries)

# KEYS: retry, held.  ARGV: now (ms), lease end (ms), count.  Lease the due retries: returns
# id, held JSON, id, held JSON...
LEASE_LUA = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
local out = {}
for _, id in ipairs(due) do
  redis.call('ZADD', KEYS[1], ARGV[2], id)
  out[#out + 1] = id
  out[#out + 1] = redis.call('HGET', KEYS[2], id) or ''
end
return out
"""
# KEYS: events, all.  ARGV: webhook id, its group.  Make its group again if it is registered.
REGROUP_LUA = """
if redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 0 then return 0 end
redis.pcall('XGROUP', 'CREATE', KEYS[1], ARGV[2], '$', 'MKSTREAM')
return 1
"""


class Entry:
    """One event on its way to one webhook: ``parked`` once it waits in the retry set."""

    __slots__ = ("id", "fields", "attempts", "first", "parked")

    def __init__(self, id, fields, attempts=0, first=None, parked=False):
        self.id, self.fields, self.attempts, self.first, self.parked = id, fields, attempts, first, parked


class Pump:
    """One webhook's deliveries in this worker."""

    def __init__(self, dispatcher, hook):
        self.dispatcher, self.hook = dispatcher, hook
        self.stopped = False
        self.wake = gevent.event.Event()
        self.claim_from = "0-0"
        self.next_claim = 0.0
        self.greenlet = gevent.spawn(self.run)

    def run(self):
        while not self.stopped:
            try:
                worked = self.step()
            except redis.ResponseError as exc:
                if "NOGROUP" in str(exc) and not self.stopped:
                    self._recreate_group()
                else:
                    logger.warning("webhooks: %s id=%s", exc, self.hook["id"])
                gevent.sleep(IDLE_WAIT_SECONDS)
                continue
            except redis.RedisError as exc:
                outage.failed_round(self.dispatcher.outage, "webhooks.delivery", exc, logger)
                gevent.sleep(IDLE_WAIT_SECONDS)
                continue
            except Exception:  # noqa: BLE001 - one bad event must not end the webhook's deliveries
                logger.exception("webhooks: delivery step failed id=%s", self.hook["id"])
                gevent.sleep(IDLE_WAIT_SECONDS)
                continue
            if not worked:
                self.wake.wait(IDLE_WAIT_SECONDS)
                self.wake.clear()

    def step(self):
        """Gather up to ``concurrency`` events (a dead worker's, due retries, new ones) and
        deliver them at once; return whether there were any."""
        d, hook_id = self.dispatcher, self.hook["id"]
        group, want = queue.group(hook_id), d.concurrency
        batch = []
        now = time.monotonic()
        if now >= self.next_claim:  # what a dead worker was delivering (idle past one lease)
            self.next_claim = now + d.lease_ms / 2000
            found = d.redis.xautoclaim(queue.EVENTS, group, d.consumer, d.lease_ms, self.claim_from, count=want)
            self.claim_from = found[0]
            batch += [Entry(mid, fields) for mid, fields in found[1] if mid is not None and fields]
        if len(batch) < want:
            leased = d.lease(keys=[hooks.retry_key(hook_id), hooks.held_key(hook_id)],
                              args=[_now(), _now() + d.lease_ms, want - len(batch)])
            for mid, held in zip(leased[::2], leased[1::2]):
                state = json.loads(held) if held else {"fields": {}, "attempts": 0, "first": None}
                batch.append(Entry(mid, state["fields"], state["attempts"], state["first"], parked=True))
        if len(batch) < want:
            found = d.redis.xreadgroup(group, d.consumer, {queue.EVENTS: ">"}, count=want - len(batch))
            batch += [Entry(mid, fields) for mid, fields in (found[0][1] if found else ())]
        if batch:
            hook = self.hook
            gevent.joinall([gevent.spawn(self._one, hook, entry) for entry in batch])
        return bool(batch)

    def _one(self, hook, entry):
        try:
            self.dispatcher.deliver(hook, entry)
        except Exception:  # noqa: BLE001 - left pending or leased: another attempt comes
            logger.exception("webhooks: delivery failed id=%s event=%s", hook["id"], entry.id)

    def _recreate_group(self):
        # The queue vanished (a Redis restarted without its data): start again from new events,
        # but only while the webhook is registered (a removed one's group must stay gone).
        hook_id = self.hook["id"]
        self.dispatcher.regroup(keys=[queue.EVENTS, queue.ALL], args=[hook_id, queue.group(hook_id)])


def _now():
    return int(time.time() * 1000)
