"""Defaults for every setting; RIPPLE_<NAME> in the environment overrides each one."""

# REDIS_URL is read unprefixed (the usual name); unset means the embedded server's socket.
REDIS_URL = None

HISTORY_LENGTH = 1000          # messages kept per room (and per person's direct messages)
HEARTBEAT_SECONDS = 15         # comment sent after this much silence on a stream
RETRY_MS = 2000                # reconnect delay an EventSource is told to use
MAX_MESSAGE_CHARS = 2000       # characters of text in one message
MAX_CONTENT_LENGTH = 64 * 1024  # bytes in one request body (Flask's own setting)
BACKLOG_MAX = 200              # ?backlog=N on a fresh stream
PAGE_LIMIT_DEFAULT = 50        # messages per history page
PAGE_LIMIT_MAX = 200
IDEMPOTENCY_SECONDS = 24 * 3600  # how long a retried post returns the original message
ROOM_PAGE_MESSAGES = 50        # messages the server renders on a room page
LOBBY_ROOMS = 50               # rooms listed in the lobby

MAX_STREAMS_PER_WORKER = 9000  # each holds one Redis pub/sub connection (and a client socket)
REDIS_MAX_CONNECTIONS = 50     # command connections per worker (posting, history, health)
REDIS_SOCKET_TIMEOUT = 5.0     # seconds before a Redis command counts as failed
REDIS_RETRY_AFTER = 5          # Retry-After seconds when Redis is unreachable
