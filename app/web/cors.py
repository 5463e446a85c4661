"""Cross-origin access (flask-cors) for pages of the sites the operator names, nothing else.

RIPPLE_CORS_ORIGINS: a comma-separated list of origins ("https://app.example,https://x.example").
Their pages may open streams (``new EventSource(url, {withCredentials: true})``), read answers,
and post with a token, or with the session cookie and its CSRF token (a same-site origin over plain
HTTP only: the cookie is SameSite=Lax, and over HTTPS Flask-WTF wants this host as Referer);
preflights are answered.
Unset (the default): no cross-origin access at all.
"""
from flask_cors import CORS

ALLOWED_HEADERS = ["Content-Type", "Authorization", "X-CSRF-Token", "Idempotency-Key", "Last-Event-ID"]
EXPOSED_HEADERS = ["Retry-After", "X-Request-ID", "Ripple-Delivery"]


def origins(value):
    """The configured origins as a list (a comma-separated string, or a list from config.py)."""
    if not value:
        return []
    items = value.split(",") if isinstance(value, str) else list(value)
    return [item.strip().rstrip("/") for item in items if item.strip() and item.strip() != "*"]


def init_app(app):
    allowed = origins(app.config["CORS_ORIGINS"])
    if allowed:  # "*" is never honoured: credentials and a wildcard do not mix, and it is too wide
        # vary_header off: flask-cors says Vary: Origin only for more than one origin, yet with
        # one its headers still depend on Origin (sent without one or for the listed one, not
        # for another), so a shared cache could hand one origin's copy to another: every answer
        # says Vary: Origin, once (below).
        CORS(app, origins=allowed, supports_credentials=True, allow_headers=ALLOWED_HEADERS,
             expose_headers=EXPOSED_HEADERS, max_age=600, vary_header=False)

        @app.after_request
        def vary_by_origin(response):
            response.vary.add("Origin")
            return response
