"""What administrators see of the rooms: each room's visibility, owner, member and message
counts and last activity, in one round trip per page of rooms."""
from . import keys
from .records import PUBLIC, REGISTRY, RecordKeys


def room_names(client, limit=500):
    """The rooms to show: those with a record, then the most recently active, each once."""
    registered = client.zrevrange(REGISTRY, 0, limit - 1)
    active = client.zrevrange(keys.ROOMS_INDEX, 0, limit - 1)
    return list(dict.fromkeys(registered + active))[:limit]


def summaries(client, rooms):
    """[{"room", "visibility", "topic", "owner", "members", "messages", "last"}] for ``rooms``
    (names); ``messages`` counts every post ever stored, ``last`` is the newest message's time
    (ms, 0 when none is kept)."""
    with client.pipeline(transaction=False) as pipe:
        for room in rooms:
            k, r = keys.RoomKeys(room), RecordKeys(room)
            pipe.hmget(r.info, "visibility", "topic", "owner")
            pipe.hlen(r.members)
            pipe.hget(k.meta, "count")
            pipe.xrevrange(k.log, count=1)
        found = pipe.execute()
    shown = []
    for i, room in enumerate(rooms):
        (visibility, topic, owner), members, count, newest = found[4 * i:4 * i + 4]
        last = int(newest[0][0].split("-", 1)[0]) if newest else 0
        shown.append({"room": room, "visibility": visibility or PUBLIC, "topic": topic or "",
                      "owner": owner or None, "record": visibility is not None, "members": members,
                      "messages": int(count or 0), "last": last})
    return shown


def bans(moderation, rooms):
    """Every ban in force in ``rooms``: [{"room", "user", "until", "name", "by", "at"}]."""
    found = []
    for room in rooms:
        found += [{"room": room, **ban} for ban in moderation.active_bans(room)]
    return sorted(found, key=lambda b: -b["at"])
