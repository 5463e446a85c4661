"""Room records: a room's topic, visibility, owner and members, and who may come in.

A room without a record is a public room as every room always was (posting creates it, anyone
reads it). ``POST /rooms`` gives a room a record: its creator is the owner, and a **private**
room admits its members only.

Redis layout: every key of a room shares the room's hash tag ``{r:<room>}`` (one Cluster slot):

- ``ripple:{r:<room>}:room``    hash: topic, visibility ("public"|"private"), owner (uid),
  created (ms), slow (seconds between one person's posts, 0 = off)
- ``ripple:{r:<room>}:members`` hash: uid -> JSON {"name", "role", "since" (ms)}; role is
  "owner", "moderator" or "member". A uid is identity.uid(): an account id, a host
  application's ``sub``, or "guest:<hash of the session>".
- ``ripple:{r:<room>}:bans``    hash: uid, "addr:<address>" or "name:<folded name>" (a guest's
  name: ``guest_ban_key``) -> JSON {"until" (ms, 0 = for good), "name", "by", "at"}
  (app/rooms/moderation.py)
- ``ripple:{r:<room>}:removed`` hash: uid -> when (ms) a moderator removed or banned them: an
  invitation made before then no longer admits them (app/rooms/invites.py)
- ``ripple:{r:<room>}:gone``    string: the last id a deleted room's history gave (expires after
  GONE_SECONDS): a stream resuming from it is refused, a newer name's stream is not
- ``ripple:rooms:registry``     sorted set: rooms with a record -> created (ms); spans slots,
  so it is written beside the room's own script, never inside it

Nothing here knows about Flask: app/rooms/gate.py asks, the views decide.
"""
import json
import time
from collections import namedtuple

from ..people import names
from . import keys

# Marks a sentence for the catalogue; the web layer answers it in the reader's language
# (app/web/i18n.py, translate).
N_ = str

PUBLIC, PRIVATE = "public", "private"
VISIBILITIES = (PUBLIC, PRIVATE)
OWNER, MODERATOR, MEMBER = "owner", "moderator", "member"
ROLES = (OWNER, MODERATOR, MEMBER)
MODERATING = (OWNER, MODERATOR)  # the roles that moderate (an owner has every moderator power)
REGISTRY = "ripple:rooms:registry"
MAX_TOPIC_CHARS = 200

# What one look tells about a person and a room: ``exists`` (it has a record), ``visibility``,
# ``role`` (None: not a member), ``ban`` (the ban record in force, or None), ``slow`` (seconds),
# ``used`` (it has a record or any history: a room, not a free name; None when not asked).
Access = namedtuple("Access", "exists visibility role ban slow owner used", defaults=(None,))


class RecordKeys:
    """The record keys of one room (its history keys are app/keys.py RoomKeys: the same tag)."""

    __slots__ = ("room", "tag", "info", "members", "bans", "invites", "audit", "channel", "removed", "gone")

    def __init__(self, room):
        self.room = room
        self.tag = "ripple:{r:%s}" % room
        self.info = self.tag + ":room"
        self.members = self.tag + ":members"
        self.bans = self.tag + ":bans"
        self.invites = self.tag + ":invites"
        self.removed = self.tag + ":removed"  # hash: uid -> ms a moderator removed or banned them
        self.audit = self.tag + ":audit"
        self.channel = self.tag + ":live"  # the room's own channel: streams hear controls there
        # string: the last id of the room's history when it was deleted, for a while
        # (app/rooms/moderation.py GONE_SECONDS): a stream resuming from that history is refused.
        self.gone = self.tag + ":gone"

    def slow(self, uid_digest):
        """The key that holds one person's slow-mode wait (expires when they may post again)."""
        return self.tag + ":slow:" + uid_digest


# KEYS: info, members, log (history).  ARGV: topic, visibility, owner uid, owner's member JSON, now.
# A room that has a record or any history is taken: its people were there first.
_CREATE_LUA = """
if redis.call('EXISTS', KEYS[1]) == 1 or redis.call('EXISTS', KEYS[3]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'topic', ARGV[1], 'visibility', ARGV[2], 'owner', ARGV[3],
           'created', ARGV[5], 'slow', '0')
redis.call('HSET', KEYS[2], ARGV[3], ARGV[4])
return 1
"""


# Whether ``uid`` (a bot when ``bot``), becoming a member under a name whose names.fold is
# ``folded``, would share it with another member when one of the two is a bot and the other a
# person: the routes that name a member by name must find one member, and a bot must not pass
# for a person (409 name_taken). Names are compared as everywhere else (names.fold: case,
# width and look-alikes, so a Cyrillic "а" passes for no Latin "a"). Two people may share a
# name, as they always could, and two bots too (a token and its replacement while both are
# members, posting as the same bot). Each member's JSON carries its name's fold ("name_fold":
# member_json); ``legacy`` holds the uids of those written without one (before it was kept,
# or with the str.casefold "fold" of an earlier release, which look-alikes passed) whose name
# folds to ``folded``, as the caller read them (Rooms.namesakes): a member's name never
# changes, and every write now keeps its fold, so that read cannot go stale. Used by the
# scripts that add a member (add_member's, app/rooms/invites.py's), so the check and the store
# are one step: two at once cannot both get in.
SHARES_NAME_LUA = """
local function shares_name(members, uid, folded, bot, legacy)
  local all = redis.call('HGETALL', members)
  for i = 1, #all, 2 do
    local other = all[i]
    if other ~= uid and bot ~= (string.sub(other, 1, 6) == 'token:') then
      local fold = cjson.decode(all[i + 1])['name_fold']
      if fold == folded or (fold == nil and legacy[other]) then return true end
    end
  end
  return false
end
"""

# KEYS: members, removed.  ARGV: uid, member JSON, its name's fold ("" to check nothing: a
# role changed), "1" for a bot, the members cap, then the uids SHARES_NAME_LUA calls legacy.
# Returns 1 stored, 0 the name is taken (nothing stored), -1 the cap is reached.
_ADD_MEMBER_LUA = SHARES_NAME_LUA + """
if ARGV[3] ~= '' then
  local legacy = {}
  for i = 6, #ARGV do legacy[ARGV[i]] = true end
  if shares_name(KEYS[1], ARGV[1], ARGV[3], ARGV[4] == '1', legacy) then return 0 end
end
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 and redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[5]) then
  return -1
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HDEL', KEYS[2], ARGV[1])  -- added by the owner: a removal is over
return 1
"""


class Taken(Exception):
    """A room by that name exists already (a record, or history)."""


class NameShared(Exception):
    """A bot and a person would share a name among a room's members (SHARES_NAME_LUA)."""


class Full(Exception):
    """A cap is reached (rooms, members, invites, bans): the sentence says which."""


def member_json(name, role, since=None):
    """A member's record; "name_fold" (names.fold of the name) is for SHARES_NAME_LUA, never shown."""
    return json.dumps({"name": name, "role": role, "since": since or now_ms(), "name_fold": names.fold(name)},
                      ensure_ascii=False, separators=(",", ":"))


def _member(uid, raw):
    """A member as the routes show it: {"id", "name", "role", "since"}."""
    found = json.loads(raw)
    found.pop("fold", None)  # an earlier release's str.casefold
    found.pop("name_fold", None)
    return {"id": uid, **found}


def now_ms():
    return int(time.time() * 1000)


ACCESS_FIELDS = ("visibility", "slow", "owner")  # of a room's info hash, as access_from reads them
GUEST_PREFIX = "guest:"  # a guest's uid (app/people/identity.py stable_id): one sign-in's
TOKEN_PREFIX = "token:"  # a scoped publish token's uid (app/people/tokens.py Grant.uid)
WEBHOOK_PREFIX = "webhook:"  # a webhook's bot's uid, its answers' (app/webhooks/dispatcher.py)
BY_ADDRESS = 1  # the place of the address's ban among ban_fields


def deleted_since(cursor, gone):
    """Tell whether stream ``cursor`` (keys.parse_cursor's, or None) resumes the history of a
    room deleted since: ``gone`` (str or None) is the deleted history's last id (RecordKeys.gone).
    A cursor of an empty room (0-0) or newer than ``gone`` is the name's new room."""
    if cursor is None or not gone:
        return False
    upto = keys.parse_stream_id(gone)
    return upto is not None and (0, 0) < cursor[0] <= upto


def access_keys(room):
    """The keys Rooms.access reads, in its order: info, members, bans (one slot: the room's)."""
    k = RecordKeys(room)
    return [k.info, k.members, k.bans]


def guest_ban_key(name):
    """The bans hash field of a guest's name, "name:<names.fold(name)>": a guest's uid is one
    sign-in's, so a ban of a guest is kept under the name they use (signing in again as a guest
    with that name, or a look-alike of it, does not lift it)."""
    return "name:" + names.fold(name)


def ban_fields(uid, address, name=None):
    """The bans hash fields that concern person ``uid`` (str or None), signed in as ``name``,
    from ``address``: [uid, "addr:<address>", their guest name's key]; "-" for none. A scoped
    publish token (uid "token:<id>") posting as ``name``, or a webhook's bot ("webhook:<id>")
    answering as it, is concerned by the name's ban too: a ban of "name:<name>" stops every
    guest and every bot that would post under that name."""
    guest = uid is not None and uid.startswith((GUEST_PREFIX, TOKEN_PREFIX, WEBHOOK_PREFIX)) and name
    return [uid or "-", "addr:" + (address or "-"), guest_ban_key(name) if guest else "-"]


def access_from(uid, info, member, bans, used=None):
    """The Access that Rooms.access's three replies say: ``info`` [visibility, slow, owner],
    ``member`` the members hash's field for ``uid``, ``bans`` [by uid, by address, by guest
    name] (``ban_fields``); ``used``: whether the room's history exists (None: not asked)."""
    visibility, slow, owner = info
    member = member if uid else None
    role = json.loads(member).get("role") if member else None
    ban = None
    now = now_ms()
    for i, raw in enumerate(bans):
        if i == BY_ADDRESS and role in (OWNER, MODERATOR):
            continue  # an address is shared: its ban spares those nobody there may act on
        record = json.loads(raw) if raw else None
        if record and (not record.get("until") or record["until"] > now):
            ban = record
            break
    if used is not None:
        used = visibility is not None or bool(used)
    return Access(visibility is not None, visibility or PUBLIC, role, ban, int(slow or 0), owner, used)


class Rooms:
    """Room records in Redis: create, read, change, the membership of people."""

    def __init__(self, client, max_rooms=10000, max_members=10000):
        self.redis = client
        self.max_rooms = int(max_rooms)
        self.max_members = int(max_members)
        self._create = client.register_script(_CREATE_LUA)
        self._add_member = client.register_script(_ADD_MEMBER_LUA)

    def create(self, room, topic, visibility, owner_uid, owner_name, log_key):
        """Give ``room`` a record owned by ``owner_uid``; return its info. Raises Taken when it
        exists (a record or history), Full past RIPPLE_ROOMS_MAX records."""
        if self.redis.zcard(REGISTRY) >= self.max_rooms:
            raise Full(N_("This service has reached its limit of %d rooms; ask an administrator.")
                       % self.max_rooms)
        k = RecordKeys(room)
        now = now_ms()
        if not self._create(keys=[k.info, k.members, log_key],
                            args=[topic, visibility, owner_uid, member_json(owner_name, OWNER, now), now]):
            raise Taken(room)
        self.redis.zadd(REGISTRY, {room: now})
        return self.info(room)

    def info(self, room):
        """{"room", "topic", "visibility", "owner", "created", "slow_mode_seconds"}, or None
        for a room without a record."""
        found = self.redis.hgetall(RecordKeys(room).info)
        if not found:
            return None
        return {"room": room, "topic": found.get("topic", ""),
                "visibility": found.get("visibility", PUBLIC), "owner": found.get("owner") or None,
                "created": int(found.get("created") or 0),
                "slow_mode_seconds": int(found.get("slow") or 0)}

    def access(self, room, uid, address, log_key=None, name=None):
        """One round trip: what ``uid`` (or None) signed in as ``name`` from ``address`` may do
        in ``room`` (Access); given the room's history key (same slot), also whether the room is
        ``used``."""
        with self.redis.pipeline(transaction=False) as pipe:
            finish = self.access_reads(pipe, room, uid, address, log_key, name)
            return finish(pipe.execute())

    @staticmethod
    def access_reads(pipe, room, uid, address, log_key=None, name=None):
        """Queue on ``pipe`` the reads of ``access(room, uid, address, log_key, name)``; returns
        finish(replies) -> its Access (app/rooms/reads.py)."""
        (info, members, bans), fields = access_keys(room), ban_fields(uid, address, name)
        pipe.hmget(info, *ACCESS_FIELDS)
        pipe.hget(members, fields[0])  # not ECHO: a cluster's pipelines refuse it
        pipe.hmget(bans, *fields)
        if log_key:
            pipe.exists(log_key)

        def finish(replies):
            info, member, bans, *history = replies
            return access_from(uid, info, member, bans, history[0] if history else None)
        return finish

    def update(self, room, **fields):
        """Set topic / visibility / slow (already checked) on a room; creates no record by itself
        unless ``create`` fields are given (an administrator adopting a room without one)."""
        mapping = {name: value for name, value in fields.items() if value is not None}
        if mapping:
            self.redis.hset(RecordKeys(room).info, mapping=mapping)
            if "created" in mapping:
                self.redis.zadd(REGISTRY, {room: mapping["created"]}, nx=True)

    def members(self, room):
        """[{"id", "name", "role", "since"}], the owner first, then moderators, then by name."""
        found = self.redis.hgetall(RecordKeys(room).members)
        people = [_member(uid, raw) for uid, raw in found.items()]
        return sorted(people, key=lambda m: (ROLES.index(m["role"]), m["name"].casefold()))

    def role(self, room, uid):
        """``uid``'s role in ``room`` ("owner", "moderator", "member"), or None."""
        raw = self.redis.hget(RecordKeys(room).members, uid)
        return json.loads(raw).get("role") if raw else None

    def member(self, room, uid):
        raw = self.redis.hget(RecordKeys(room).members, uid)
        return _member(uid, raw) if raw else None

    def add_member(self, room, uid, name, role=MEMBER, check_name=False):
        """Make ``uid`` a member with ``role`` (keeping when they joined); Full past the cap.
        ``check_name``: raise NameShared, storing nothing, when a bot and a person would share
        the name (SHARES_NAME_LUA; checked and stored in one script)."""
        k = RecordKeys(room)
        current = self.member(room, uid)
        folded = names.fold(name)
        legacy = self.namesakes(room, folded) if check_name else []
        stored = self._add_member(keys=[k.members, k.removed], args=[
            uid, member_json(name, role, current and current.get("since")), folded if check_name else "",
            "1" if uid.startswith(TOKEN_PREFIX) else "", self.max_members, *legacy])
        if stored == 0:
            raise NameShared(name)
        if stored == -1:
            raise Full(N_("This room has reached its limit of %d members.") % self.max_members)

    def namesakes(self, room, folded):
        """The uids of ``room``'s members written without their name's names.fold (before it was
        kept) whose name folds to ``folded`` (names.fold's): SHARES_NAME_LUA's ``legacy``."""
        found = self.redis.hgetall(RecordKeys(room).members)
        members = ((uid, json.loads(raw)) for uid, raw in found.items())
        return [uid for uid, member in members if "name_fold" not in member and names.fold(member["name"]) == folded]

    def find_member(self, room, uid=None, name=None):
        """The member whose uid is ``uid``, or (given ``name`` instead) whose name is ``name``
        (case-insensitively; a person before a bot), or None. Never one for the other: a display name may look like
        someone else's account id (24 hex digits), so the caller says which it has."""
        if (uid is None) == (name is None):
            raise TypeError("find_member needs exactly one of uid and name")
        if uid is not None:
            return self.member(room, uid)
        folded = name.casefold()
        # A person before a bot of the same name (one added before such pairs were refused:
        # SHARES_NAME_LUA); the bot is then named by its uid. Of two bots of one name (a token
        # and its replacement), the one that joined first.
        found = [m for m in self.members(room) if m["name"].casefold() == folded]
        return min(found, key=lambda m: (m["id"].startswith(TOKEN_PREFIX), m.get("since", 0)), default=None)

    def registered(self):
        """Rooms with a record, newest first."""
        return self.redis.zrevrange(REGISTRY, 0, -1)

    def visible(self, rooms, uid):
        """Of ``rooms`` (names), those a person ``uid`` (or None) may see listed: every public
        room, and the private ones they belong to (one round trip); each with True if private."""
        with self.redis.pipeline(transaction=False) as pipe:
            for room in rooms:
                k = RecordKeys(room)
                pipe.hget(k.info, "visibility")
                pipe.hexists(k.members, uid or "-")  # not ECHO: a cluster's pipelines refuse it
            found = pipe.execute()
        return {room: visibility == PRIVATE for room, visibility, member in zip(rooms, found[::2], found[1::2])
                if visibility != PRIVATE or (uid and member)}
