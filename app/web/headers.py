"""Security headers on every answer: what a browser may run, frame, sniff, send on and keep.

Pages load only their own scripts and styles (no inline code anywhere, so an injected tag runs
nothing), no page may be framed (a framed room would let another page click Send for the
person), and answers that carry a CSRF token or a name are never stored by a cache.
"""
from flask import request

CONTENT_SECURITY_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; "
                           "frame-ancestors 'none'; object-src 'none'; base-uri 'none'; "
                           "form-action 'self'")
EVERY_ANSWER = (
    ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),            # frame-ancestors for browsers without CSP 2
    ("Referrer-Policy", "same-origin"),     # room names stay on this site
)
# For answers made outside Flask (the token fast path, the WSGI guards): JSON only, never kept.
PLAIN = [*EVERY_ANSWER, ("Cache-Control", "no-store")]


def init_app(app):
    app.after_request(_secure)


def _secure(response):
    headers = response.headers
    for name, value in EVERY_ANSWER:
        headers.setdefault(name, value)
    # Pages carry a CSRF token and the person's name, JSON answers their messages: nothing is
    # stored by a shared cache or the back/forward cache unless a view chose a policy
    # (static files: revalidate; streams: no-cache).
    if "Cache-Control" not in headers and request.endpoint != "static":
        headers["Cache-Control"] = "no-store"
    return response
