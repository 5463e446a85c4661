"""Invite links: signed tokens that make a signed-in person a member of a room.

A link carries ``<room>.<invite id>`` signed with the service's SECRET_KEY (itsdangerous), so a
guessed or edited link is refused before Redis is asked. The invite itself lives in the room's
``ripple:{r:<room>}:invites`` hash: id -> JSON {"expires" (ms, 0 = never), "max_uses" (0 = any),
"uses", "by", "created"}; deleting the field revokes it. Redeeming is one script on the room's
slot (check, count the use, add the member), so a one-use link admits exactly one person however
many open it at once. At most RIPPLE_ROOM_INVITES_MAX invites stand per room; expired and used-up
ones are dropped when a new one is made.

A removal or a ban by a moderator marks the person (``ripple:{r:<room>}:removed``): an invitation
made before the mark no longer admits them, even once a ban lapses or is lifted (a link shared
in the room reached them too); a new invitation, or the owner adding them, does. Leaving by
oneself leaves no mark.
"""
import json
import secrets

from itsdangerous import BadSignature, URLSafeSerializer

from ..people import names
from .records import SHARES_NAME_LUA, NameShared, RecordKeys, ban_fields, now_ms

# Marks a sentence for the catalogue; the web layer answers it in the reader's language
# (app/web/i18n.py, translate).
N_ = str

# KEYS: invites, members, bans, removed.  ARGV: invite id, uid, member JSON, now (ms), address key,
# the guest name's ban key ("-" for none: records.ban_fields), the name's names.fold, then the
# uids records.SHARES_NAME_LUA calls legacy.
# Returns 1 joined, 2 already a member (no use counted), -1 unknown/revoked, -2 expired,
# -3 used up, -4 banned, -5 removed (or banned) by a moderator after this invitation was made,
# -6 a member bot goes by their name (no use counted).
_REDEEM_LUA = SHARES_NAME_LUA + """
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return -1 end
local invite = cjson.decode(raw)
if redis.call('HEXISTS', KEYS[2], ARGV[2]) == 1 then return 2 end
for _, key in ipairs({ARGV[2], ARGV[5], ARGV[6]}) do
  local ban = redis.call('HGET', KEYS[3], key)
  if ban then
    local until_ms = cjson.decode(ban)['until']
    if until_ms == 0 or until_ms > tonumber(ARGV[4]) then return -4 end
  end
end
local removed_at = redis.call('HGET', KEYS[4], ARGV[2])
if removed_at and tonumber(removed_at) >= (invite['created'] or 0) then return -5 end
if invite['expires'] > 0 and invite['expires'] <= tonumber(ARGV[4]) then return -2 end
if invite['max_uses'] > 0 and invite['uses'] >= invite['max_uses'] then return -3 end
local legacy = {}
for i = 8, #ARGV do legacy[ARGV[i]] = true end
if shares_name(KEYS[2], ARGV[2], ARGV[7], false, legacy) then return -6 end
invite['uses'] = invite['uses'] + 1
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(invite))
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
redis.call('HDEL', KEYS[4], ARGV[2])
return 1
"""

N_ = str  # marks a message for translation (app/web/i18n.py): the web layer translates it
SENTENCES = {
    -1: N_("This invitation is not valid: it was revoked, or never existed."),
    # One sentence for every dead link, which tells its holder nothing more ("expired" was
    # wrong for a used-up one).
    -2: N_("This invitation can no longer be used: it expired, was used up or was revoked. Ask for a new one."),
    -3: N_("This invitation has been used as many times as it allows. Ask for a new one."),
    -4: N_("You are banned from this room."),
    -5: N_("You were removed from this room after this invitation was made; ask a moderator for a new one."),
    "full": N_("This room has reached its limit of %(limit)d open invitations; revoke one first."),
}
# The answer each refusal gets over HTTP: (status, code).
STATUS = {-1: (404, "invite_invalid"), -2: (410, "invite_used"), -3: (410, "invite_used"),
          -4: (403, "banned"), -5: (403, "removed"), "full": (409, "invite_cap")}
JOINED, ALREADY = 1, 2


class Refused(Exception):
    """An invitation that admits nobody (or cannot be made): ``key`` names why (SENTENCES)."""

    def __init__(self, key, **values):
        super().__init__(SENTENCES[key] % values)
        self.key, self.values = key, values


class Invites:
    """Make, list, revoke and redeem a room's invitations."""

    def __init__(self, client, secret_key, max_per_room=100, rooms=None):
        self.redis = client
        self.rooms = rooms  # records.Rooms: the members written before their names' folds were kept
        self.max_per_room = int(max_per_room)
        self.signer = URLSafeSerializer(secret_key, salt="ripple-invite")
        self._redeem = client.register_script(_REDEEM_LUA)

    def create(self, room, by, expires_in=None, max_uses=None):
        """Make an invitation; return {"id", "token", "expires" (ms or None), "max_uses" (or None)}.
        Raises Refused past the room's cap of standing invitations."""
        k = RecordKeys(room)
        if self.redis.hlen(k.invites) >= self.max_per_room:
            self._prune(room)
            if self.redis.hlen(k.invites) >= self.max_per_room:
                raise Refused("full", limit=self.max_per_room)
        invite_id = secrets.token_hex(8)
        now = now_ms()
        record = {"expires": now + int(expires_in * 1000) if expires_in else 0,
                  "max_uses": int(max_uses or 0), "uses": 0, "by": by, "created": now}
        self.redis.hset(k.invites, invite_id, json.dumps(record))
        return _shown(invite_id, record, self.signer.dumps([room, invite_id]))

    def list(self, room):
        """The room's standing invitations, newest first (without their tokens)."""
        found = self.redis.hgetall(RecordKeys(room).invites)
        shown = [_shown(invite_id, json.loads(raw)) for invite_id, raw in found.items()]
        return sorted(shown, key=lambda i: -i["created"])

    def revoke(self, room, invite_id):
        """Revoke one invitation; True if it stood."""
        return bool(self.redis.hdel(RecordKeys(room).invites, invite_id))

    def read(self, token):
        """(room, invite id) of a signed link, or raise Refused (a forged or broken link)."""
        try:
            room, invite_id = self.signer.loads(token)
        except (BadSignature, ValueError, TypeError):
            raise Refused(-1) from None
        if not isinstance(room, str) or not isinstance(invite_id, str):
            raise Refused(-1)
        return room, invite_id

    def invite(self, room, invite_id):
        """The invitation's record (shown), or None when revoked or unknown."""
        raw = self.redis.hget(RecordKeys(room).invites, invite_id)
        return _shown(invite_id, json.loads(raw)) if raw else None

    def standing(self, room, invite_id):
        """The invitation's record (shown) while it may still admit someone; raises Refused(-2)
        for one revoked, expired or used up: to whoever holds a dead link it has simply expired
        (they learn nothing more of it, nor of the room)."""
        found = self.invite(room, invite_id)
        if found is None or (found["expires"] and found["expires"] <= now_ms()) or (
                found["max_uses"] and found["uses"] >= found["max_uses"]):
            raise Refused(-2)
        return found

    def redeem(self, room, invite_id, uid, member_json, address, name):
        """Admit ``uid`` (signed in as ``name``: a guest's ban is kept under it): JOINED, or
        ALREADY (a member: no use counted); raises Refused, or records.NameShared when a member
        bot goes by ``name`` (checked as it is stored: records.SHARES_NAME_LUA)."""
        k = RecordKeys(room)
        _, where, by_name = ban_fields(uid, address, name)
        folded = names.fold(name)
        legacy = self.rooms.namesakes(room, folded) if self.rooms is not None else []
        result = int(self._redeem(keys=[k.invites, k.members, k.bans, k.removed],
                                  args=[invite_id, uid, member_json, now_ms(), where, by_name, folded, *legacy]))
        if result == -6:
            raise NameShared(name)
        if result < 0:
            raise Refused(result)
        return result

    def _prune(self, room):
        now = now_ms()
        for invite in self.list(room):
            if (invite["expires"] and invite["expires"] <= now) or (
                    invite["max_uses"] and invite["uses"] >= invite["max_uses"]):
                self.revoke(room, invite["id"])


def _shown(invite_id, record, token=None):
    shown = {"id": invite_id, "expires": record.get("expires") or None,
             "max_uses": record.get("max_uses") or None, "uses": record.get("uses", 0),
             "by": record.get("by", ""), "created": record.get("created", 0)}
    if token is not None:
        shown["token"] = token
    return shown
