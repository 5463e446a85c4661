"""The app's Redis clients: one pool for commands, one for the streams' pub/sub listeners."""
from flask import current_app

from ..delivery.listener import ListenerFactory
from ..people.accounts import Accounts
from ..people.addresses import AddressStreams
from ..people.identity import Sessions
from ..people.jwts import Verifier
from ..people.names import Names
from ..people.presence import Presence
from ..people.typing import Typing
from ..rooms.store import Store
from . import topology


def init_app(app):
    """Create the clients and the store; nothing connects until first use."""
    cfg = app.config
    url = cfg["REDIS_URL"]
    timeout = float(cfg["REDIS_SOCKET_TIMEOUT"])
    commands = topology.command_client(url, int(cfg["REDIS_MAX_CONNECTIONS"]), timeout)
    # Each open stream opens its own pub/sub connection for its life (app/delivery/listener.py); their
    # number is capped by MAX_STREAMS_PER_WORKER, not by a pool.
    listeners = ListenerFactory(url, timeout)
    app.extensions["redis"] = commands
    app.extensions["redis_listeners"] = listeners
    publish = topology.publish_command(url)
    app.extensions["store"] = Store(commands, cfg["HISTORY_LENGTH"], cfg["IDEMPOTENCY_SECONDS"],
                                    cfg["REPLICA_ACKS"], cfg["REPLICA_TIMEOUT_MS"], publish,
                                    # direct messages expire with the session (idle this long)
                                    direct_seconds=cfg["PERMANENT_SESSION_LIFETIME"],
                                    lobby_max=cfg["LOBBY_INDEX_MAX"])
    app.extensions["names"] = Names(commands, cfg["NAME_IDLE_SECONDS"],
                                    float(cfg["NAME_GRACE_HEARTBEATS"]) * float(cfg["HEARTBEAT_SECONDS"]),
                                    _names_list(cfg["RESERVED_NAMES"]))
    app.extensions["accounts"] = Accounts(commands, cfg["PERMANENT_SESSION_LIFETIME"],
                                          flag(cfg["FIRST_ACCOUNT_ADMIN"]))
    app.extensions["jwts"] = Verifier(cfg["JWT_SECRET"], cfg["JWT_PUBLIC_KEY"], cfg["JWT_AUDIENCE"],
                                      cfg["JWT_ISSUER"], cfg["JWT_LEEWAY_SECONDS"])
    app.extensions["sessions"] = Sessions(commands, cfg["PERMANENT_SESSION_LIFETIME"], publish)
    app.extensions["presence"] = Presence(commands, cfg["HEARTBEAT_SECONDS"],
                                          cfg["PRESENCE_GRACE_SECONDS"], cfg["MAX_STREAMS_PER_SESSION"],
                                          publish)
    app.extensions["typing"] = Typing(commands, cfg["TYPING_INTERVAL_SECONDS"], publish)
    app.extensions["addresses"] = AddressStreams(commands, cfg["MAX_STREAMS_PER_ADDRESS"],
                                                 cfg["HEARTBEAT_SECONDS"])


def _names_list(value):
    # RIPPLE_RESERVED_NAMES arrives as one comma-separated string; instance/config.py may give a list.
    return value.split(",") if isinstance(value, str) else list(value)


def flag(value):
    """Read an on/off setting."""
    # RIPPLE_X=true/false arrive as JSON booleans; "yes"/"1"/"on" from instance/config.py too.
    return value if isinstance(value, bool) else str(value).strip().lower() in ("1", "true", "yes", "on")


def get_store():
    return current_app.extensions["store"]
