"""Room names, cursors and Redis key names (app/rooms/keys.py)."""
import pytest

from app.rooms import keys


@pytest.mark.parametrize("room,ok", [("lobby", True), ("a", True), ("0-x_y", True), ("-x", False),
                                     ("Lobby", False), ("a" * 65, False), ("a/b", False), ("..", False),
                                     ("a\x00", False), ("", False)])
def test_room_names(room, ok):
    assert keys.valid_room(room) is ok


@pytest.mark.parametrize("raw", ["", "garbage", "1-", "-1", "1-2-3", "x" * 10000, "99999999999999999999999-0"])
def test_malformed_cursors_read_as_none(raw):
    assert keys.parse_cursor(raw) is None


def test_room_keys_share_one_cluster_hash_tag():
    k = keys.RoomKeys("lobby")
    tags = {name[name.index("{"):name.index("}") + 1] for name in (k.log, k.channel, k.meta, k.idempotency("x"))}
    assert tags == {"{r:lobby}"}
