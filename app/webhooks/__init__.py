"""Outgoing webhooks and bots: events of the rooms, POSTed signed to the URLs operators register.

Owns the registry (``hooks``), the event queue every event enters (``queue``: a Redis Stream
with a consumer group per webhook, and ``Outbox.emit``, the one entry point for every kind of
event), the signatures (``signing``), one HTTP attempt (``sender``), the deliveries that run as
greenlets in every gunicorn worker (``dispatcher``; ``pump``: one webhook's, in one worker), the
admin API (``views``), ``flask webhooks`` (``cli``) and the service object that holds them
(``service``). docs/webhooks.md says what a receiver gets and what the guarantee is.

May import: the standard library, redis-py, gevent, requests, ``app.rooms`` (message checks,
ids), ``app.people`` (room patterns, who is signed in), ``app.ops`` (topology, services),
``app.web`` (the administrator rule, JSON errors) in ``views`` only; Flask only in ``views`` and
``cli``. Nothing outside imports it but the app factory, app.ops.services and app.ops.cli; the
room store, its conversation and presence take its Outbox as an argument.
"""
