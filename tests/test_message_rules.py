"""The pure checks a posted message passes: its text and its author's name."""
import pytest

from app.rooms import messages


@pytest.mark.parametrize("text", ["", "   ", "\n\t ", "\u200b", " \u200d\u200b\n", "\ufe0f", "\u3164", "\u2060\ufeff"])
def test_blank_or_invisible_text_is_rejected(text):
    with pytest.raises(messages.Invalid) as info:
        messages.check_text(text, 10)
    assert info.value.status == 422


@pytest.mark.parametrize("text", ["\u200bhi", "👍\ufe0f", "a\u200db", "\u3164 x"])
def test_text_that_shows_something_is_kept(text):
    assert messages.check_text(text, 10) == text


def test_text_over_the_limit_is_rejected():
    with pytest.raises(messages.Invalid):
        messages.check_text("x" * 11, 10)


def test_lone_surrogate_is_rejected_not_crashing():
    with pytest.raises(messages.Invalid) as info:
        messages.check_text("a\ud800b", 10)
    assert info.value.status == 400


@pytest.mark.parametrize("name", ["a\u202eb", "a\x00b", "x" * 33, " ", "a\nb"])
def test_bad_names_are_rejected(name):
    with pytest.raises(messages.Invalid):
        messages.check_name(name)


def test_names_are_trimmed_and_any_script_is_fine():
    assert messages.check_name("  小明 ") == "小明"
