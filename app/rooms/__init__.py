"""Rooms and their messages: what is stored, and the rules a message must pass.

Owns room history and publishing in Redis (``store``: the Lua scripts that store a message and
publish it in one step, history windows), room names, Redis key names and the opaque cursor
(``keys``), a message's shape and checks (``messages``) and how a log is laid out on a page
(``timeline``: day separators, runs by one author), and a message's later life
(``conversation``: edits, deletions, reactions as events on the log, current versions), and which
known names a message mentions (``mentions``). Rooms that belong to someone: a room's record,
owner and members (``records``), bans, removals, slow mode, deletion and the audit record
(``moderation``), invitation links (``invites``), what administrators see (``census``), history
kept by age (``retention``), NDJSON export and import (``archive``).

May import: the standard library, redis-py, ``emoji`` (what one emoji is), ``itsdangerous``
(signed invitation links), ``app.people.names`` (the name rule). Not Flask:
views that serve rooms live in ``app.web``.
"""
