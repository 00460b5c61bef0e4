import phonenumbers
import pytest
from hypothesis import given
from hypothesis import strategies as st

from smsrelay.errors import InvalidRequest
from smsrelay.phone import from_wire, normalize, to_wire


@pytest.mark.parametrize(
    ("raw", "region", "e164"),
    [
        ("+61 491 570 156", None, "+61491570156"),
        ("0491 570 156", "AU", "+61491570156"),
        ("0491570156", "au", "+61491570156"),
        ("61491570156", None, "+61491570156"),
        ("0061491570156", None, "+61491570156"),
        ("+1 (202) 555-0143", None, "+12025550143"),
        ("081 234 5678", "TH", "+66812345678"),
    ],
)
def test_normalize_to_e164(raw, region, e164):
    assert normalize(raw, region) == e164


@pytest.mark.parametrize(
    ("raw", "region", "why"),
    [
        ("", None, "empty"),
        ("hello", "AU", "not a phone number"),
        ("+61 4", None, "too short"),
        ("+61 491 570 15", None, "not a valid phone number"),
        ("0491570156", None, "no default country"),
        ("+999 1234 5678", None, "not a phone number"),
    ],
)
def test_invalid_numbers_name_the_number_and_why(raw, region, why):
    with pytest.raises(InvalidRequest) as info:
        normalize(raw, region)
    assert why in str(info.value)
    assert info.value.field == "to"


def test_wire_formats():
    assert to_wire("+61491570156", "e164") == "+61491570156"
    assert to_wire("+61491570156", "digits") == "61491570156"
    assert to_wire("+66812345678", "national") == "0812345678"
    assert from_wire("61491570156") == "+61491570156"
    assert from_wire("+61491570156") == "+61491570156"


REGIONS = sorted(phonenumbers.SUPPORTED_REGIONS)


@given(st.sampled_from(REGIONS))
def test_example_numbers_round_trip_in_every_region(region):
    example = phonenumbers.example_number_for_type(region, phonenumbers.PhoneNumberType.MOBILE)
    if example is None:
        return
    national = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.NATIONAL)
    e164 = normalize(national, region)
    assert e164 == phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)
    # Normalising is idempotent, and the digits wire format reads back the same.
    assert normalize(e164) == e164
    assert from_wire(to_wire(e164, "digits")) == e164


@given(st.text(max_size=30))
def test_normalize_never_crashes(text):
    try:
        out = normalize(text, "AU")
    except InvalidRequest as exc:
        assert exc.field == "to"
    else:
        assert out.startswith("+") and out[1:].isdigit()
