"""A room's mention names are bounded (RIPPLE_ROOM_MENTION_NAMES_MAX): the most recently seen
stay, the rest are forgotten, on real Redis."""
import uuid

from app.people.names import fold
from app.people.reading import Reader, Reading
from app.rooms import keys


def test_a_room_knows_only_its_most_recently_seen_names(redis_client):
    reading = Reading(redis_client, 3600, max_names=3)
    room = "cap-" + uuid.uuid4().hex[:8]
    # Visits within one millisecond tie, and a tie goes to the name that sorts first: these
    # names sort (folded) in the order they are seen. ("person0", "person1" fold to
    # "persono", "personl" and sorted after "person4": the test failed on fast runs.)
    names = ["person-%s" % c for c in "abcde"]
    for n, name in enumerate(names):
        reading.visit(Reader("r%d" % n, ["s%d" % n]), room, name)
    k = keys.RoomKeys(room)
    assert sorted(redis_client.hkeys(k.people)) == sorted(fold(name) for name in names[2:])
    assert redis_client.zcard(k.seen) == 3


def test_names_learnt_before_the_cap_are_forgotten_first(redis_client):
    reading = Reading(redis_client, 3600, max_names=3)
    room = "cap-" + uuid.uuid4().hex[:8]
    k = keys.RoomKeys(room)
    redis_client.hset(k.people, mapping={"old%d" % n: '{"name": "old", "reader": "x"}' for n in range(6)})
    reading.visit(Reader("new", ["s"]), room, "newcomer")
    assert redis_client.hlen(k.people) == 3 and redis_client.hexists(k.people, fold("newcomer"))
