"""The web layer: HTTP routes of rooms, pages, and what every request and answer passes through.

Owns the room HTTP interface (``api``), server-rendered pages (``pages``, ``form_pages``), error
answers (``errors``), JSON-or-page replies (``replies``), safe ``next`` targets (``targets``),
security headers (``headers``), request bodies read in time (``bodies``), the token-post fast
path before Flask (``fastpost``), CSRF and rate limits (``guard``), request ids
(``request_ids``), cross-origin access (``cors``) and the interface language (``i18n``: locale
choice, the switch, catalogues).

May import: every other package. Nothing outside ``app.web`` and ``app/__init__.py`` should need
a view of it (people's views use ``replies`` and ``guard`` only).
"""
