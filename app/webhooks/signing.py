"""Webhook signatures: HMAC-SHA256 over "<timestamp>.<body>" with the webhook's secret.

Headers of every delivery:
    Ripple-Delivery-Id: <webhook id>-<event id>   (the event's id in the queue) the same on every
                                                   retry: de-duplicate by it
    Ripple-Timestamp:   <unix seconds>             when this attempt was signed
    Ripple-Signature:   v1=<hex HMAC-SHA256(secret, "<timestamp>." + raw body)>
    Ripple-Event:       message | edit | delete | reaction | mention | join | leave

A receiver recomputes the HMAC over the raw body bytes it read, compares in constant time, and
refuses timestamps older than a few minutes (a replayed request). ``verify`` does exactly that
and is what the tests use; docs/webhooks.md shows it in a few lines.
"""
import hashlib
import hmac
import time

SCHEME = "v1"
TOLERANCE_SECONDS = 300


def signature(secret, timestamp, body):
    """The Ripple-Signature value for ``body`` (bytes) signed at ``timestamp`` (int seconds)."""
    mac = hmac.new(secret.encode(), b"%d." % int(timestamp) + body, hashlib.sha256)
    return "%s=%s" % (SCHEME, mac.hexdigest())


def headers(secret, delivery_id, kind, body, now=None):
    """The headers of one attempt (a fresh timestamp each time)."""
    timestamp = int(now if now is not None else time.time())
    return {"Ripple-Delivery-Id": delivery_id, "Ripple-Timestamp": str(timestamp),
            "Ripple-Signature": signature(secret, timestamp, body), "Ripple-Event": kind}


def verify(secret, body, timestamp, signed, tolerance=TOLERANCE_SECONDS, now=None):
    """Tell whether ``signed`` (a Ripple-Signature header) is ``secret``'s signature of ``body``
    at ``timestamp`` (the Ripple-Timestamp header), made within ``tolerance`` seconds of now."""
    try:
        timestamp = int(timestamp)
    except (TypeError, ValueError):
        return False
    if abs((now if now is not None else time.time()) - timestamp) > tolerance:
        return False
    # A header may carry several signatures (a secret being rotated): any one that matches.
    expected = signature(secret, timestamp, body)
    return any(hmac.compare_digest(expected, part.strip()) for part in str(signed).split(","))
