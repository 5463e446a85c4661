"""The app's services: one object, ``app.extensions["ripple"]``, built in one place, in order.

``services()`` (or ``services(app)`` outside a request) is the one accessor. Everything here is a
plain object: nothing connects to Redis until first use, so building the app does no I/O.

Build order, written out in ``init_app`` (each line uses only those above it): metrics and the
outage log; the command client and the streams' listener factory; the stores built on the
command client (history, names, accounts, sessions, presence, typing, read positions, address
counts, publish tokens); the JWT verifier; last the hub every stream shares (app/delivery/stream.py), which
takes several of them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flask import current_app

if TYPE_CHECKING:  # the classes import services() themselves: built in init_app, named here
    from ..delivery.listener import ListenerFactory
    from ..delivery.stream import Hub
    from ..people.accounts import Accounts
    from ..people.addresses import AddressStreams
    from ..people.identity import Sessions
    from ..people.jwts import Verifier
    from ..people.names import Names
    from ..people.presence import Presence
    from ..people.reading import Reading
    from ..people.tokens import PublishTokens
    from ..people.typing import Typing
    from ..rooms.conversation import Conversation
    from ..rooms.invites import Invites
    from ..rooms.moderation import Moderation
    from ..rooms.records import Rooms
    from ..rooms.retention import Retention
    from ..rooms.store import Store
    from ..webhooks.service import Webhooks
    from .metrics import Metrics
    from .outage import OutageLog

KEY = "ripple"  # app.extensions[KEY]


@dataclass(eq=False)
class Services:
    """What the app's views, streams and commands share (one per app, per worker process)."""

    metrics: Metrics
    outage: OutageLog
    redis: Any                   # the command client: redis.Redis, or RedisCluster (app/ops/topology.py)
    listeners: ListenerFactory   # each stream's own pub/sub connection (app/delivery/listener.py)
    store: Store                 # room history and publishing, direct messages
    names: Names
    accounts: Accounts
    sessions: Sessions
    presence: Presence
    typing: Typing
    reading: Reading             # read positions, sidebars, unread and mention counts
    addresses: AddressStreams
    tokens: PublishTokens
    jwts: Verifier
    rooms: Rooms | None = None               # room records: owners, visibility, members (app/rooms/records.py)
    moderation: Moderation | None = None     # bans, removals, slow mode, deletion, the audit record
    invites: Invites | None = None           # invitation links
    retention: Retention | None = None       # history trimmed by age (RIPPLE_HISTORY_MAX_AGE_DAYS)
    conversation: Conversation | None = None  # edits, deletions, reactions (app/rooms/conversation.py)
    hub: Hub | None = None              # what every stream shares; set last (it reads the others)
    webhooks: Webhooks | None = None    # registry, event queue, this worker's deliveries (app/webhooks/)
    oidc: Any = None             # Authlib's OAuth registry when OpenID Connect is on (app/people/oidc.py)
    languages: Any = None        # the interface languages there are catalogues for (app/web/i18n.py)


def services(app=None):
    """The app's Services: ``app``'s, or the current app's inside a request or app context."""
    return (app or current_app).extensions[KEY]


def init_app(app):
    """Build the app's Services from its config into ``app.extensions["ripple"]``; no I/O."""
    # Imported here, not at the top: these modules call services() themselves.
    from ..delivery.listener import ListenerFactory
    from ..delivery.stream import Hub
    from ..people.accounts import Accounts
    from ..people.addresses import AddressStreams
    from ..people.identity import Sessions
    from ..people.jwts import Verifier
    from ..people.names import Names
    from ..people.presence import Presence
    from ..people.reading import Reading
    from ..people.tokens import PublishTokens
    from ..people.typing import Typing
    from ..rooms.conversation import Conversation
    from ..rooms.invites import Invites
    from ..rooms.mentions import Mentions
    from ..rooms.moderation import Moderation
    from ..rooms.records import Rooms
    from ..rooms.retention import Retention
    from ..rooms.store import Store
    from ..webhooks import service as webhooks
    from . import topology
    from .metrics import Metrics
    from .outage import OutageLog

    cfg = app.config
    url = cfg["REDIS_URL"]
    timeout = float(cfg["REDIS_SOCKET_TIMEOUT"])
    metrics = Metrics()
    commands = topology.command_client(url, int(cfg["REDIS_MAX_CONNECTIONS"]), timeout)
    publish = topology.publish_command(url)
    outbox = webhooks.outbox(commands, cfg)  # where stored room messages meet the webhooks
    ripple = Services(
        metrics=metrics,
        outage=OutageLog(metrics),
        redis=commands,
        # Each open stream opens its own pub/sub connection for its life; their number is
        # capped by MAX_STREAMS_PER_WORKER, not by a pool.
        listeners=ListenerFactory(url, timeout),
        store=Store(commands, cfg["HISTORY_LENGTH"], cfg["IDEMPOTENCY_SECONDS"],
                    cfg["REPLICA_ACKS"], cfg["REPLICA_TIMEOUT_MS"], publish,
                    # direct messages expire with the session (idle this long)
                    direct_seconds=cfg["PERMANENT_SESSION_LIFETIME"],
                    lobby_max=cfg["LOBBY_INDEX_MAX"], outbox=outbox),
        names=Names(commands, cfg["NAME_IDLE_SECONDS"],
                    float(cfg["NAME_GRACE_HEARTBEATS"]) * float(cfg["HEARTBEAT_SECONDS"]),
                    _names_list(cfg["RESERVED_NAMES"])),
        accounts=Accounts(commands, cfg["PERMANENT_SESSION_LIFETIME"], flag(cfg["FIRST_ACCOUNT_ADMIN"])),
        sessions=Sessions(commands, cfg["PERMANENT_SESSION_LIFETIME"], publish),
        presence=Presence(commands, cfg["HEARTBEAT_SECONDS"], cfg["PRESENCE_GRACE_SECONDS"],
                          cfg["MAX_STREAMS_PER_SESSION"], publish, outbox=outbox,
                          list_max=cfg["PRESENCE_LIST_MAX"], batch_ms=cfg["PRESENCE_BATCH_MS"]),
        typing=Typing(commands, cfg["TYPING_INTERVAL_SECONDS"], publish),
        reading=Reading(commands, cfg["PERMANENT_SESSION_LIFETIME"], publish, cfg["ROOM_MENTION_NAMES_MAX"]),
        addresses=AddressStreams(commands, cfg["MAX_STREAMS_PER_ADDRESS"], cfg["HEARTBEAT_SECONDS"]),
        tokens=PublishTokens(commands, cfg.get("PUBLISH_TOKEN"), cfg["POST_RATE_TOKEN"]),
        jwts=Verifier(cfg["JWT_SECRET"], cfg["JWT_PUBLIC_KEY"], cfg["JWT_AUDIENCE"],
                      cfg["JWT_ISSUER"], cfg["JWT_LEEWAY_SECONDS"]),
    )
    ripple.rooms = Rooms(commands, cfg["ROOMS_MAX"], cfg["ROOM_MEMBERS_MAX"])
    ripple.moderation = Moderation(commands, publish, cfg["ROOM_BANS_MAX"])
    ripple.moderation.sidebars = ripple.reading  # a deleted room leaves its people's sidebars
    ripple.invites = Invites(commands, cfg["SECRET_KEY"], cfg["ROOM_INVITES_MAX"], rooms=ripple.rooms)
    ripple.retention = Retention(commands, cfg["HISTORY_MAX_AGE_DAYS"])
    ripple.store.after_post = ripple.retention.after_post  # trimmed by age now and then
    ripple.conversation = Conversation(ripple.store, cfg["EDIT_WINDOW_SECONDS"], publish, rooms=ripple.rooms)
    # "@name" is resolved when a message is stored, and counted for the person it names.
    ripple.store.mentions = Mentions(commands, ripple.reading.mentioned, ripple.reading.unmentioned)
    ripple.conversation.on_delete = ripple.store.mentions.forget
    ripple.hub = Hub(ripple, cfg)
    ripple.webhooks = webhooks.build(commands, ripple.store, outbox, cfg, ripple.conversation)
    # The worker's own loops report Redis failures to the outage log: one line per outage.
    for loop in (ripple.presence, ripple.addresses, ripple.webhooks.dispatcher):
        loop.outage = ripple.outage
    ripple.webhooks.dispatcher.metrics = metrics
    metrics.webhook_queue.depths = ripple.webhooks.dispatcher.queue_depths  # read at each scrape
    app.extensions[KEY] = ripple
    return ripple


def _names_list(value):
    # RIPPLE_RESERVED_NAMES arrives as one comma-separated string; instance/config.py may give a list.
    return value.split(",") if isinstance(value, str) else list(value)


def flag(value):
    """Read an on/off setting."""
    # RIPPLE_X=true/false arrive as JSON booleans; "yes"/"1"/"on" from instance/config.py too.
    return value if isinstance(value, bool) else str(value).strip().lower() in ("1", "true", "yes", "on")
