"""Who is speaking: display names held by signed sessions, claimed in Redis; publish tokens."""
import hmac
import os
import secrets
import time
import unicodedata

from flask import current_app, request, session
from flask.sessions import SecureCookieSessionInterface

# KEYS: the name's claim.  ARGV: session id, ttl (s).  A name belongs to the session that
# claimed it while that session is active; expiry frees it.  Returns 1 if held by ARGV[1].
_CLAIM_LUA = """
local owner = redis.call('GET', KEYS[1])
if owner and owner ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return 1
"""
_RELEASE_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class NameTaken(Exception):
    """Another active session holds this name."""


def load_secret_key(app):
    """Use SECRET_KEY from the environment, else one generated once and kept in instance/."""
    key = os.environ.get("SECRET_KEY") or app.config.get("SECRET_KEY")
    if key:
        return key
    os.makedirs(app.instance_path, exist_ok=True)
    path = os.path.join(app.instance_path, "secret_key")
    try:  # O_EXCL: when workers race at first boot, exactly one writes and all read the same
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
    except FileExistsError:
        pass
    deadline = time.monotonic() + 5
    while True:
        with open(path) as f:
            key = f.read().strip()
        if key or time.monotonic() > deadline:
            return key
        time.sleep(0.01)  # the winner has created the file but not yet written it


class SessionInterface(SecureCookieSessionInterface):
    """Flask's signed cookie session, marked Secure whenever the request came over HTTPS."""

    def get_cookie_secure(self, app):
        return bool(app.config["SESSION_COOKIE_SECURE"] or request.is_secure)


def normalize(name):
    """The form names are compared in: NFKC, then case-folded (so "Ａｎｎ" is "ann")."""
    return unicodedata.normalize("NFKC", name).casefold()


class Names:
    """Name claims in Redis, one key per normalized name, expiring unless refreshed."""

    def __init__(self, client, ttl):
        self.redis = client
        self.ttl = int(ttl)
        self._claim = client.register_script(_CLAIM_LUA)
        self._release = client.register_script(_RELEASE_LUA)

    @staticmethod
    def key(name):
        return "ripple:name:{%s}" % normalize(name)

    def claim(self, name, sid):
        """Take or refresh ``name`` for session ``sid``; raise NameTaken if someone else has it."""
        if not self._claim(keys=[self.key(name)], args=[sid, self.ttl]):
            raise NameTaken(name)

    def release(self, name, sid):
        self._release(keys=[self.key(name)], args=[sid])

    def owner(self, name):
        """Return the session id holding ``name``, or None."""
        return self.redis.get(self.key(name))


def current():
    """Return (name, sid) of the signed-in person, or (None, None)."""
    name, sid = session.get("name"), session.get("sid")
    if isinstance(name, str) and isinstance(sid, str):
        return name, sid
    return None, None


def sign_in(name):
    """Claim ``name`` for this browser's session (a new session id unless it has one)."""
    sid = session.get("sid") or secrets.token_urlsafe(18)
    names = current_app.extensions["names"]
    names.claim(name, sid)
    old = session.get("name")
    if old and normalize(old) != normalize(name):
        names.release(old, sid)
    session.clear()
    session.update(name=name, sid=sid)
    session.permanent = True


def sign_out():
    name, sid = current()
    if name:
        current_app.extensions["names"].release(name, sid)
    session.clear()


def bearer_ok():
    """Tell whether the request carries the server-to-server publish token."""
    token = current_app.config.get("PUBLISH_TOKEN")
    header = request.headers.get("Authorization", "")
    if not token or not header.startswith("Bearer "):
        return False
    return hmac.compare_digest(header[7:].strip().encode(), str(token).encode())
