import pytest
from hypothesis import given
from hypothesis import strategies as st

from smsrelay.errors import InvalidRequest
from smsrelay.segments import GSM7_BASIC, GSM7_EXTENSION, analyse, check_length


@pytest.mark.parametrize(
    ("text", "encoding", "units", "parts"),
    [
        ("", "GSM-7", 0, 0),
        ("a" * 160, "GSM-7", 160, 1),
        ("a" * 161, "GSM-7", 161, 2),
        ("a" * 306, "GSM-7", 306, 2),
        ("a" * 307, "GSM-7", 307, 3),
        ("€" * 80, "GSM-7", 160, 1),  # extension characters count twice
        ("€" * 81, "GSM-7", 162, 2),
        ("é" * 10, "GSM-7", 10, 1),
        ("ä" * 70, "GSM-7", 70, 1),
        ("á" * 70, "UCS-2", 70, 1),
        ("á" * 71, "UCS-2", 71, 2),
        ("á" * 134, "UCS-2", 134, 2),
        ("á" * 135, "UCS-2", 135, 3),
        ("👋" * 35, "UCS-2", 70, 1),  # outside the BMP: two UTF-16 units each
        ("👋" * 36, "UCS-2", 72, 2),
    ],
)
def test_encoding_and_parts(text, encoding, units, parts):
    seg = analyse(text)
    assert (seg.encoding, seg.units, seg.parts) == (encoding, units, parts)


def test_length_errors_name_the_limit():
    with pytest.raises(InvalidRequest, match="over kaleyra's limit of 4000"):
        check_length("x" * 4001, max_chars=4000, provider="kaleyra", recipient="+61491570156")
    with pytest.raises(InvalidRequest, match="empty"):
        check_length("  ", max_chars=10, provider="sandbox")


@pytest.mark.parametrize(
    ("text", "encoding", "per_part"),
    [
        ("", "GSM-7", 160),
        ("a" * 160, "GSM-7", 160),
        ("a" * 161, "GSM-7", 153),
        ("á" * 70, "UCS-2", 70),
        ("á" * 71, "UCS-2", 67),
    ],
)
def test_per_part_is_the_room_in_each_part(text, encoding, per_part):
    seg = analyse(text)
    assert (seg.encoding, seg.per_part) == (encoding, per_part)


@pytest.mark.parametrize("text", ["", "a€", "á", "👋x"])
def test_counts_are_whole_numbers(text):
    seg = analyse(text)
    assert all(type(n) is int for n in (seg.units, seg.parts, seg.characters, seg.per_part))
    assert seg.characters == len(text)


TO = "+61491570156"


@pytest.mark.parametrize(
    ("text", "limits", "message"),
    [
        ("  \n", {"max_chars": 10}, "the message is empty"),
        ("x" * 11, {"max_chars": 10}, "the message is 11 characters, over kaleyra's limit of 10"),
        ("a" * 307, {"max_chars": 1600, "max_parts": 2}, "the message needs 3 GSM-7 parts, over kaleyra's limit of 2"),
        ("á" * 71, {"max_chars": 1600, "max_parts": 1}, "the message needs 2 UCS-2 parts, over kaleyra's limit of 1"),
    ],
)
def test_each_length_error_names_the_field_recipient_and_provider(text, limits, message):
    with pytest.raises(InvalidRequest) as info:
        check_length(text, provider="kaleyra", recipient=TO, **limits)
    assert str(info.value) == message
    assert (info.value.field, info.value.recipient, info.value.provider) == ("message", TO, "kaleyra")


def test_a_message_exactly_at_a_limit_passes():
    assert check_length("x" * 10, max_chars=10, provider="kaleyra").characters == 10
    assert check_length("a" * 306, max_chars=1600, provider="kaleyra", max_parts=2).parts == 2
    assert check_length("a" * 307, max_chars=1600, provider="kaleyra").parts == 3  # no part limit given


GSM = "".join(sorted(GSM7_BASIC | GSM7_EXTENSION))


@given(st.text(alphabet=GSM, max_size=1000))
def test_gsm_parts_hold_the_text(text):
    seg = analyse(text)
    assert seg.encoding == "GSM-7"
    assert seg.units == sum(2 if c in GSM7_EXTENSION else 1 for c in text)
    if seg.units > 160:
        assert (seg.parts - 1) * 153 < seg.units <= seg.parts * 153


@given(st.text(max_size=600))
def test_parts_are_monotonic_in_length(text):
    seg = analyse(text)
    longer = analyse(text + "x")
    if seg.encoding == longer.encoding:
        assert longer.parts >= seg.parts
    assert seg.parts >= (1 if text else 0)
