import phonenumbers
import pytest
from hypothesis import given
from hypothesis import strategies as st

from smsrelay.errors import InvalidRequest
from smsrelay.phone import from_wire, mask, normalize, to_wire


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
        ("+61491570156  ", None, "+61491570156"),  # pasted from a spreadsheet
        ("001 800 FLOWERS", None, "+18003569377"),  # an international prefix, then a vanity number
        ("\t0491 570 156\n", "AU", "+61491570156"),
        ("61491570156", "AU", "+61491570156"),  # a country code, with a default region too
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


HINT = " (no default country is set: write it as +<country code>…)"


@pytest.mark.parametrize(
    ("raw", "region", "message"),
    [
        ("  ", None, "the phone number is empty"),
        # Ten digits could be a national number anywhere: without a region, never guess a country code.
        ("2975601234", None, "'2975601234' is not a phone number: Missing or invalid default region." + HINT),
        ("0491570156", None, "'0491570156' is not a phone number: Missing or invalid default region." + HINT),
        ("hello", "AU", "'hello' is not a phone number: The string supplied did not seem to be a phone number."),
        ("+65 6123 456", None, "'+65 6123 456' is not a valid phone number: too short"),
        ("+1 202 555 01434", None, "'+1 202 555 01434' is not a valid phone number: too long"),
        ("+65 6123 45678", None, "'+65 6123 45678' is not a valid phone number: wrong length for its country"),
        ("+61 191 570 156", None, "'+61 191 570 156' is not a valid phone number: no such number range in its country"),
        # With a "+" the hint about a default country would not help.
        (
            "+999 1234 5678",
            None,
            "'+999 1234 5678' is not a phone number: Could not interpret numbers after plus-sign.",
        ),
        # The region decides how digits are dialled: "00" is not Australia's international prefix.
        ("0061491570156", "AU", "'0061491570156' is not a valid phone number: no such number range in its country"),
    ],
)
def test_each_refusal_says_exactly_why(raw, region, message):
    with pytest.raises(InvalidRequest) as info:
        normalize(raw, region)
    assert str(info.value) == message
    assert (info.value.field, info.value.recipient) == ("to", raw)


def test_wire_formats():
    assert to_wire("+61491570156", "e164") == "+61491570156"
    assert to_wire("+61491570156", "digits") == "61491570156"
    assert to_wire("+66812345678", "national") == "0812345678"
    assert from_wire("61491570156") == "+61491570156"
    assert from_wire("+61491570156") == "+61491570156"


def test_national_wire_format_drops_spaces_and_hyphens():
    assert to_wire("+81312345678", "national") == "0312345678"  # Japan writes 03-1234-5678


@pytest.mark.parametrize(
    ("raw", "region", "e164"),
    [
        (" 61491570156 ", None, "+61491570156"),
        ("0491570156", "AU", "+61491570156"),  # a national number, read in the region given
        ("+61491570156", "TH", "+61491570156"),
        ("1-800-FLOWERS", None, "+18003569377"),  # read with the "+" it was sent without
        # Unparseable numbers fall back to their digits, so an event is never lost over a format.
        ("12 34", None, "+1234"),
        ("0491570156", None, "+0491570156"),
        ("n/a", None, "n/a"),
    ],
)
def test_from_wire_reads_numbers_back_or_falls_back_to_digits(raw, region, e164):
    assert from_wire(raw, region) == e164


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


@pytest.mark.parametrize(
    ("number", "masked"),
    [
        ("+61491570156", "+614•••••156"),
        ("61491570156", "614•••••156"),
        ("+1234567", "+123•567"),  # seven digits: the shortest that keeps three at each end
        ("+123456", "+••••56"),  # shorter: only the last two show
        ("12", "•12"),
        ("Xmas-Promo", "Xma••••omo"),  # an alphanumeric sender is masked the same way
    ],
)
def test_mask_hides_the_middle_of_a_number(number, masked):
    assert mask(number) == masked


@given(st.text(alphabet="0123456789", min_size=7, max_size=15))
def test_a_masked_number_keeps_its_length_and_hides_all_but_six_digits(digits):
    masked = mask("+" + digits)
    assert len(masked) == len(digits) + 1
    assert (masked[:4], masked[-3:]) == ("+" + digits[:3], digits[-3:])
    assert set(masked[4:-3]) == {"•"}
