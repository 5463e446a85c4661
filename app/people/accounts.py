"""Accounts: a name reserved for good, a password hashed with Argon2id, a role, a disabled flag.

Redis layout (docs/security.md, "Accounts"):
- ``ripple:{a:<id>}`` hash: name, hash (Argon2id, PHC string), admin ("1"/"0"),
  disabled ("1"/"0"), created (ms). ``<id>`` is stable for the account's life.
- ``ripple:{a:<id>}:sessions`` set: the session ids signed in to it (to end them all at once).
- ``ripple:account:{<folded name>}`` string: the account id. It shares its hash tag with the
  name's claim (``ripple:name:{<folded name>}``, app/people/names.py), so a claim can consult it
  atomically: a guest can never take an account's name, nor a look-alike of it.
- ``ripple:accounts`` set of every id; ``ripple:first-account``: the first id ever registered.

Passwords are never stored, logged or echoed: only the hash is kept.
"""
import secrets
import time

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from .names import Names, fold

# Marks a sentence for the catalogue; the web layer answers it in the reader's language
# (app/web/i18n.py, translate).
N_ = str

ALL = "ripple:accounts"
FIRST = "ripple:first-account"
MIN_PASSWORD = 10
HASH_THREADS = 2  # password hashes one worker computes at once (64 MiB each)
MAX_PASSWORD = 1024  # Argon2 takes any length; a bound keeps a huge body from costing a hash

SENTENCES = {
    "password_type": N_("Password must be a string."),
    "short": N_("Password is too short: use at least %d characters.") % MIN_PASSWORD,
    "long": N_("Password is too long: the limit is %d characters.") % MAX_PASSWORD,
    "wrong": N_("That name and password do not match an account."),
    "disabled": N_("This account is disabled. Ask an administrator of this service."),
    "taken": N_("“%s” is taken by an account. Sign in with its password, or pick another name."),
    "current": N_("Your current password is not right."),
}

# KEYS: the name's account index, the name's claim (one slot).  ARGV: account id, the
# registering browser's previous session id ("" if none).  Index the name unless an account
# has it or another session holds the name now.  Returns 1, or 0 when taken.
_INDEX_LUA = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local owner = redis.call('GET', KEYS[2])
if owner and owner ~= ARGV[2] then return 0 end
redis.call('SET', KEYS[1], ARGV[1])
return 1
"""


class Invalid(ValueError):
    """Input an account cannot take; ``status`` is the HTTP answer."""

    def __init__(self, message, status=422):
        super().__init__(message)
        self.status = status


def check_password(password):
    """Return ``password`` if it is a usable one, else raise Invalid with a sentence."""
    if not isinstance(password, str):
        raise Invalid(SENTENCES["password_type"], 400)
    if len(password) < MIN_PASSWORD:
        raise Invalid(SENTENCES["short"])
    if len(password) > MAX_PASSWORD:
        raise Invalid(SENTENCES["long"])
    return password


index_key = Names.account_key


def account_key(account_id):
    return "ripple:{a:%s}" % account_id


def sessions_key(account_id):
    return account_key(account_id) + ":sessions"


def administers(account):
    """Tell whether ``account`` (Accounts.get's record, or None) holds an administrator's
    powers: flagged "admin" and not disabled. The one rule: every place that grants those
    powers asks it (app/web/gate.py admin_account, sessions' ``describe``)."""
    return bool(account and account["admin"] and not account["disabled"])


class Accounts:
    """Accounts in Redis, and the one place passwords are hashed and checked."""

    def __init__(self, client, session_lifetime, first_is_admin=False):
        self.redis = client
        self.lifetime = int(getattr(session_lifetime, "total_seconds", lambda: session_lifetime)())
        self.first_is_admin = bool(first_is_admin)
        self.hasher = PasswordHasher()  # Argon2id, RFC 9106's low-memory profile
        self._dummy = None
        self._pool = None  # made on first use, in the worker (after gevent patched it)
        self._index = client.register_script(_INDEX_LUA)

    def id_for(self, name):
        """The id of the account holding ``name`` (or a look-alike of it), or None."""
        return self.redis.get(index_key(name))

    def get(self, account_id):
        """{"id", "name", "admin": bool, "disabled": bool, "hash"} or None."""
        if not account_id:
            return None
        fields = self.redis.hgetall(account_key(account_id))
        if not fields.get("name"):
            return None
        return {"id": account_id, "name": fields["name"], "hash": fields.get("hash", ""),
                "admin": fields.get("admin") == "1", "disabled": fields.get("disabled") == "1"}

    def create(self, name, password, admin=False, previous_sid=None):
        """Register ``name`` (checked by the caller) with ``password``; return the account dict.

        Raises Invalid for a bad password, NameInUse when an account has the name (or a
        look-alike) or another session holds it now. The first account ever registered is an
        administrator when the operator allows it (RIPPLE_FIRST_ACCOUNT_ADMIN).
        """
        check_password(password)
        account_id = secrets.token_hex(12)
        key = account_key(account_id)
        # The record first: a crash before the index leaves an orphan nobody can sign in to,
        # never an index pointing at nothing.
        self.redis.hset(key, mapping={"name": name, "hash": self._hash(password), "admin": "0",
                                      "disabled": "0", "created": int(time.time() * 1000)})
        if not self._index(keys=[index_key(name), Names.key(name)], args=[account_id, previous_sid or ""]):
            self.redis.delete(key)
            raise NameInUse(name)
        self.redis.sadd(ALL, account_id)
        first = self.redis.set(FIRST, account_id, nx=True)
        if admin or (first and self.first_is_admin):
            self.redis.hset(key, "admin", "1")
        return self.get(account_id)

    def authenticate(self, name, password):
        """Return the account whose name and password these are, or None (same work either way:
        an unknown name still costs one hash, so timing does not tell names apart)."""
        account = self.get(self.id_for(name)) if isinstance(name, str) and name else None
        if not isinstance(password, str) or len(password) > MAX_PASSWORD:
            password = ""
        if account is None:
            self._verify(self._dummy_hash(), password)
            return None
        if not self._verify(account["hash"], password):
            return None
        if self.hasher.check_needs_rehash(account["hash"]):  # parameters raised since
            self.redis.hset(account_key(account["id"]), "hash", self._hash(password))
        return account

    def set_password(self, account_id, password):
        check_password(password)
        self.redis.hset(account_key(account_id), "hash", self._hash(password))

    def set_flag(self, account_id, flag, value):
        """Set "admin" or "disabled" on an account."""
        self.redis.hset(account_key(account_id), flag, "1" if value else "0")

    def all(self):
        """Every account, sorted by name."""
        found = [self.get(account_id) for account_id in self.redis.smembers(ALL)]
        return sorted((a for a in found if a), key=lambda a: fold(a["name"]))

    def add_session(self, account_id, sid):
        key = sessions_key(account_id)
        pipe = self.redis.pipeline(transaction=False)
        pipe.sadd(key, sid)
        pipe.expire(key, self.lifetime)  # every session in it expires no later than this
        pipe.execute()

    def remove_session(self, account_id, sid):
        self.redis.srem(sessions_key(account_id), sid)

    def session_ids(self, account_id):
        return self.redis.smembers(sessions_key(account_id))

    def _verify(self, hashed, password):
        # The mismatch is caught in the hashing thread: raised out of gevent's thread pool,
        # every wrong password printed a traceback to the log (a guesser's hundreds of them).
        return self._off_loop(_matches, self.hasher, hashed, password)

    def _hash(self, password):
        return self._off_loop(self.hasher.hash, password)

    def _off_loop(self, fn, *args):
        """Run a hash (tens of ms of CPU, 64 MiB) on a small thread pool when serving under
        gevent, so a worker's open streams keep their heartbeats meanwhile (argon2-cffi lets go
        of the GIL); at most HASH_THREADS at once per worker bounds the memory. Plain
        processes (the CLI) hash inline."""
        try:
            from gevent import monkey
            from gevent.threadpool import ThreadPool
        except ImportError:  # pragma: no cover - gevent is a requirement
            return fn(*args)
        if not monkey.is_module_patched("socket"):
            return fn(*args)
        if self._pool is None:
            self._pool = ThreadPool(HASH_THREADS)
        return self._pool.apply(fn, args)

    def _dummy_hash(self):
        if self._dummy is None:
            self._dummy = self._hash(secrets.token_hex(16))
        return self._dummy


def _matches(hasher, hashed, password):
    """Whether ``password`` (str) matches argon2 hash ``hashed``: True, or False (never raises
    for a mismatch or a malformed hash)."""
    try:
        return hasher.verify(hashed, password)
    except (VerificationError, InvalidHashError):
        return False


class NameInUse(Exception):
    """An account has this name (or a look-alike), or someone holds it right now."""
