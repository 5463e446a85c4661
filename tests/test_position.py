"""The stream position's rules (app/delivery/position.py): order, dedupe, gaps, the cursor's two parts."""
from app.delivery.position import Position


def room(mid, prev, text="x"):
    return b"%s %s\n{\"t\":\"%s\"}" % (mid, prev, text.encode())


def direct(mid, prev):
    return b"@%s %s\n{}" % (mid, prev)


def test_a_payload_that_follows_the_position_is_framed_with_the_new_cursor():
    position = Position(b"5-0")
    frames = position.take([room(b"6-0", b"5-0")])
    assert frames == [b'event: message\nid: 6-0\ndata: {"t":"x"}\n\n']
    assert position.cursor() == b"6-0" and not position.room_gap


def test_a_whole_batch_chains_in_one_take():
    position = Position(b"5-0")
    frames = position.take([room(b"6-0", b"5-0"), room(b"6-1", b"6-0"), room(b"9-0", b"6-1")])
    assert len(frames) == 3 and position.cursor() == b"9-0"
    assert position.newest_ms == b"9"


def test_payloads_already_sent_are_skipped_without_a_gap():
    position = Position(b"9-0")  # the replay sent up to 9-0 while these were in flight
    assert position.take([room(b"8-0", b"7-0"), room(b"9-0", b"8-0")]) == []
    assert not position.room_gap and position.cursor() == b"9-0"


def test_a_payload_whose_predecessor_was_never_seen_flags_a_gap_and_holds_the_rest():
    position = Position(b"5-0")
    frames = position.take([room(b"7-0", b"6-0"), room(b"8-0", b"7-0")])
    assert frames == [] and position.room_gap
    assert position.cursor() == b"5-0"  # nothing moves until the gap is filled


def test_fill_sends_the_missing_range_in_order_and_clears_the_gap():
    position = Position(b"5-0")
    position.take([room(b"7-0", b"6-0")])
    frames = position.fill_room([("5-0", "{}"), ("6-0", '{"a":1}'), ("7-0", '{"a":2}')])
    assert [f.split(b"\n")[1] for f in frames] == [b"id: 6-0", b"id: 7-0"]
    assert not position.room_gap and position.cursor() == b"7-0"
    # and the live feed chains on from there
    assert len(position.take([room(b"8-0", b"7-0")])) == 1


def test_ids_compare_as_numbers_not_text():
    position = Position(b"10-0")
    assert position.take([room(b"9-5", b"9-4")]) == []  # older, though "9-5" > "10-0" as text
    assert not position.room_gap


def test_direct_messages_keep_their_own_chain_and_the_cursor_carries_both():
    position = Position(b"5-0", b"3-0")
    frames = position.take([direct(b"4-0", b"3-0"), room(b"6-0", b"5-0")])
    assert frames[0].startswith(b"event: direct\nid: 5-0.4-0\n")
    assert frames[1].startswith(b"event: message\nid: 6-0.4-0\n")


def test_a_direct_gap_does_not_hold_room_messages():
    position = Position(b"5-0", b"3-0")
    frames = position.take([direct(b"9-0", b"8-0"), room(b"6-0", b"5-0")])
    assert position.direct_gap and not position.room_gap
    assert len(frames) == 1 and position.cursor() == b"6-0.3-0"


def test_a_stream_without_a_person_ignores_direct_payloads():
    position = Position(b"5-0")
    assert position.take([direct(b"4-0", b"0-0")]) == [] and not position.direct_gap


def test_unnumbered_events_never_move_the_cursor():
    position = Position(b"5-0")
    frames = position.take([b'!presence\n{"a":1}'])
    assert frames == [b'event: presence\ndata: {"a":1}\n\n'] and position.cursor() == b"5-0"


def test_behind_compares_a_log_head_with_the_position():
    position = Position(b"5-0", b"2-0")
    assert position.room_behind(b"5-1") and not position.room_behind(b"5-0")
    assert position.direct_behind(b"3-0") and not position.direct_behind(b"2-0")


def test_control_payloads_are_kept_for_the_stream_and_never_relayed():
    position = Position(b"5-0")
    frames = position.take([b"!#replaced\nabc", b'!presence\n{"a":1}', room(b"6-0", b"5-0")])
    assert frames == [b'event: presence\ndata: {"a":1}\n\n', b'event: message\nid: 6-0\ndata: {"t":"x"}\n\n']
    assert position.controls == [(b"replaced", b"abc")]
