"""One delivery attempt over HTTP, and what it means: delivered, retry later, or give up.

Requests go only to the webhook's own URL (and, by a redirect, only to the same host), within
one deadline for the whole attempt (connect, send, answer, redirects), reading at most a capped
number of bytes of the answer. Proxies named by HTTPS_PROXY/HTTP_PROXY are used (an egress proxy
is how docs/webhooks.md keeps webhooks off internal addresses).
"""
import email.utils
import re
import time
import urllib.parse

import gevent
import requests

REDIRECTS = (301, 302, 303, 307, 308)
MAX_REDIRECTS = 3
USER_AGENT = "Ripple-Webhooks/1"


class Outcome:
    """What one attempt came to. ``status``: the HTTP status (None when no answer came);
    ``retry``: whether to try again later; ``retry_after``: seconds the endpoint asked for;
    ``body``/``content_type``: the answer (a 2xx's, at most the cap); ``latency_ms``."""

    __slots__ = ("status", "error", "retry", "retry_after", "body", "content_type", "latency_ms")

    def __init__(self, status=None, error=None, retry=False, retry_after=None, body=b"", content_type=""):
        self.status, self.error, self.retry, self.retry_after = status, error, retry, retry_after
        self.body, self.content_type, self.latency_ms = body, content_type, 0

    @property
    def delivered(self):
        return self.status is not None and 200 <= self.status < 300


class _Overtime(Exception):
    """The attempt's whole deadline passed."""


def send(session, url, body, headers, timeout, max_bytes):
    """POST ``body`` to ``url`` once (following same-host redirects); return an Outcome.

    Retried later: no answer (connection refused or reset, timeout), 5xx, 408 and 429 (with
    their Retry-After). Not retried: any other 4xx, a redirect elsewhere, a URL requests cannot
    use. A 2xx's answer over ``max_bytes`` is delivered all the same; its body is not read.
    """
    started = time.monotonic()
    try:
        with gevent.Timeout(timeout, _Overtime):
            outcome = _post(session, url, body, headers, timeout, max_bytes)
    except _Overtime:
        outcome = Outcome(error="No answer within %g s." % timeout, retry=True)
    except (requests.ConnectionError, requests.Timeout) as exc:
        outcome = Outcome(error="Could not reach the endpoint: %s" % _short(exc), retry=True)
    except requests.RequestException as exc:
        outcome = Outcome(error="The request could not be made: %s" % _short(exc))
    outcome.latency_ms = int((time.monotonic() - started) * 1000)
    return outcome


def _post(session, url, body, headers, timeout, max_bytes):
    target = url
    for _ in range(MAX_REDIRECTS + 1):
        with session.post(target, data=body, headers={**headers, "User-Agent": USER_AGENT},
                          timeout=timeout, allow_redirects=False, stream=True) as response:
            status = response.status_code
            if status in REDIRECTS and response.headers.get("Location"):
                following = urllib.parse.urljoin(target, response.headers["Location"])
                if not same_host(url, following):
                    return Outcome(status, "Redirected to another host (%s): not followed."
                                   % urllib.parse.urlsplit(following).hostname)
                if downgrade(target, following):
                    return Outcome(status, "Redirected from https to http: not followed.")
                target = following
                continue
            if 200 <= status < 300:
                content, whole = _read(response, max_bytes)
                outcome = Outcome(status, None if whole else "The answer is over %d bytes: not read." % max_bytes,
                                  body=content if whole else b"",
                                  content_type=response.headers.get("Content-Type", ""))
                return outcome
            if status >= 500 or status in (408, 429):
                return Outcome(status, "HTTP %d" % status, retry=True,
                               retry_after=retry_after(response.headers.get("Retry-After")))
            return Outcome(status, "HTTP %d: not retried." % status)
    return Outcome(status, "More than %d redirects: not followed." % MAX_REDIRECTS)


def same_host(url, other):
    """Tell whether ``other`` is on ``url``'s host (http -> https of the same host is fine;
    https -> http is not followed: ``downgrade``)."""
    a, b = urllib.parse.urlsplit(url), urllib.parse.urlsplit(other)
    return b.scheme in ("http", "https") and a.hostname == b.hostname and (
        a.port == b.port or b.scheme == "https" and b.port in (None, 443))


def downgrade(url, other):
    """Tell whether going from ``url`` to ``other`` leaves https for plain http (the signed body,
    and any credentials, would cross the network in the clear)."""
    return urllib.parse.urlsplit(url).scheme == "https" and urllib.parse.urlsplit(other).scheme != "https"


def retry_after(value):
    """Seconds a Retry-After header asks for (a number or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # "²" is a digit to str.isdigit, not to float()
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _read(response, max_bytes):
    """(up to ``max_bytes`` of the body, whether that was all of it)."""
    chunks, size = [], 0
    for chunk in response.iter_content(8192):
        chunks.append(chunk)
        size += len(chunk)
        if size > max_bytes:
            return b"", False
    return b"".join(chunks), True


def _short(exc):
    """What went wrong, for the delivery log: the operating system's reason when there is one
    ("Connection refused", "Name or service not known"), which urllib3's wrapping (pool, host,
    "Max retries exceeded") otherwise pushes past the cut. A URL's user:password never shows."""
    reason = _os_reason(exc)
    text = "%s (%s)" % (reason, str(exc)) if reason else str(exc)
    text = re.sub(r"//[^/@\s]*@", "//***@", text)
    return text if len(text) <= 200 else text[:197] + "..."


def _os_reason(exc, depth=0):
    """The ``strerror`` of the OSError beneath ``exc`` (through urllib3's ``reason`` and the
    exceptions' causes and arguments), or None."""
    if exc is None or depth > 8:
        return None
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    for inner in (getattr(exc, "reason", None), exc.__cause__, exc.__context__,
                  *(arg for arg in getattr(exc, "args", ()) if isinstance(arg, BaseException))):
        if isinstance(inner, BaseException) and inner is not exc:
            found = _os_reason(inner, depth + 1)
            if found:
                return found
    return None
