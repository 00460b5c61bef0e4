import phonenumbers
import pytest
from hypothesis import given
from hypothesis import strategies as st

from smsrelay import phone
from smsrelay.errors import InvalidRequest
from smsrelay.phone import _is_valid, _parse_e164, from_wire, mask, normalize, region_of, to_wire


@pytest.fixture(autouse=True)
def _cold_caches():
    """Each test builds the regions' compiled patterns itself, not only the first that needs them.

    make mutation runs a mutant of ``_region`` against the tests that call it: with warm caches
    that is whichever test ran first, and the mutant's wrong patterns would meet no other test.
    """
    phone._regions.cache_clear()
    phone._national_prefix.cache_clear()


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


# The fast path for "+<digits>" must give exactly what phonenumbers.parse gives, or step aside.
def _e164_cases() -> list[str]:
    cases = set()
    for region in phonenumbers.SUPPORTED_REGIONS:
        for kind in phonenumbers.PhoneNumberType.values():
            example = phonenumbers.example_number_for_type(region, kind)
            if example is None:
                continue
            e164 = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)
            cc, nsn = example.country_code, phonenumbers.national_significant_number(example)
            cases |= {e164, e164[:-1], e164 + "7", f"+{cc}0{nsn}", f"+{cc}1{nsn}", f"+{cc}00{nsn}", f"+{cc}{nsn[1:]}"}
            prefix = phonenumbers.PhoneMetadata.metadata_for_region(region).national_prefix
            if prefix:
                cases.add(f"+{cc}{prefix}{nsn}")  # a national prefix after the country code: parse strips it
    return sorted(cases)


E164_CASES = _e164_cases()


def _fields(parsed: phonenumbers.PhoneNumber | None) -> object:
    return None if parsed is None else (parsed.country_code, parsed.national_number, parsed.italian_leading_zero)


def test_the_e164_fast_path_agrees_with_phonenumbers_parse_on_every_region_and_type() -> None:
    taken = 0
    for number in E164_CASES:
        fast = _parse_e164(number)
        if fast is None:
            continue
        taken += 1
        assert fast == phonenumbers.parse(number, None), number
        assert _fields(fast) == _fields(phonenumbers.parse(number, "AU")), number
    assert len(E164_CASES) > 4_000 and taken > len(E164_CASES) // 2  # the fast path is the common path


@given(st.from_regex(r"\+[1-9][0-9]{3,16}", fullmatch=True))
def test_the_e164_fast_path_agrees_with_phonenumbers_parse_on_any_digits(number: str) -> None:
    fast = _parse_e164(number)
    if fast is not None:
        assert fast == phonenumbers.parse(number, None)


@pytest.mark.parametrize("number", ["+61491570156", "+66812345678", "+12025550143", "+4407400123456", "+390612345678"])
def test_region_of_a_normalised_number(number: str) -> None:
    assert region_of(number) == phonenumbers.region_code_for_number(phonenumbers.parse(number, None))


def test_region_of_every_region_that_shares_its_calling_code() -> None:
    # +1 (US, CA, the Caribbean), +7 (RU, KZ), +44 (GB, GG, IM, JE), …: the code alone does not say.
    shared = [r for rs in phonenumbers.COUNTRY_CODE_TO_REGION_CODE.values() if len(rs) > 1 for r in rs]
    checked = 0
    for region in shared:
        example = phonenumbers.example_number(region)
        if example is None:
            continue
        number = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)
        assert region_of(number) == phonenumbers.region_code_for_number(example), number
        checked += 1
    assert checked > 40


def test_validity_agrees_with_phonenumbers_on_every_region_and_type() -> None:
    for number in E164_CASES:
        parsed = phonenumbers.parse(number, None)
        assert _is_valid(parsed) == phonenumbers.is_valid_number(parsed), number


@given(st.from_regex(r"\+[1-9][0-9]{3,16}", fullmatch=True))
def test_validity_agrees_with_phonenumbers_on_any_digits(number: str) -> None:
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return
    assert _is_valid(parsed) == phonenumbers.is_valid_number(parsed)


@given(st.sampled_from(E164_CASES), st.integers(1, 6), st.integers(0, 999_999))
def test_fast_paths_agree_with_phonenumbers_near_real_numbers(example: str, tail: int, digits: int) -> None:
    number = example[:-tail] + str(digits).zfill(6)[-tail:]  # a real range, other subscriber digits
    fast = _parse_e164(number)
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        assert fast is None
        return
    assert fast is None or fast == parsed
    assert _is_valid(parsed) == phonenumbers.is_valid_number(parsed)


def _reference(number: str) -> str | None:
    """normalize() as plain phonenumbers calls: E.164, or None where normalize raises."""
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return None
    ok = phonenumbers.is_valid_number(parsed)
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164) if ok else None


def test_normalize_agrees_with_phonenumbers_on_every_region_and_type() -> None:
    for number in E164_CASES:
        try:
            got: str | None = normalize(number)
        except InvalidRequest:
            got = None
        assert got == _reference(number), number
