"""The helpers every webhook parser and verifier shares: strict JSON, headers, secret comparison."""

from __future__ import annotations

import pytest

from smsrelay.errors import WebhookError
from smsrelay.webhooks import MAX_JSON_DEPTH, WebhookRequest, constant_time_equals, json_body


def body(text: str | bytes) -> WebhookRequest:
    return WebhookRequest("POST", "/hook", body=text if isinstance(text, bytes) else text.encode())


@pytest.mark.parametrize("opening", ["[", '{"a":'])
def test_json_as_deep_as_the_limit_is_read_one_level_more_is_refused(opening: str) -> None:
    closing = "]" if opening == "[" else "}"
    deepest = opening * MAX_JSON_DEPTH + "1" + closing * MAX_JSON_DEPTH
    assert json_body(body(deepest), "kudosity") is not None

    with pytest.raises(WebhookError) as refused:
        json_body(body(opening + deepest + closing), "kudosity")
    assert (refused.value.status_code, refused.value.provider) == (400, "kudosity")
    assert str(refused.value) == f"the webhook body nests deeper than {MAX_JSON_DEPTH} levels"


@pytest.mark.parametrize(
    "text",
    [
        "[" * MAX_JSON_DEPTH + "]" * (MAX_JSON_DEPTH - 1) + ", [], {}]",  # more brackets than levels
        '["[[[[", ' + "[" * (MAX_JSON_DEPTH - 1) + "]" * MAX_JSON_DEPTH,  # a string's brackets are no levels
    ],
)
def test_a_body_at_the_limit_is_read_however_many_brackets_it_holds(text: str) -> None:
    assert len(json_body(body(text), "kudosity")) > 1


@pytest.mark.parametrize(
    "text",
    [
        "[[]," * MAX_JSON_DEPTH + "[]" + "]" * MAX_JSON_DEPTH,  # levels that close as they go, deeper each time
        '{"a": "\\n", "b": ' + "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH + "}",  # after an escape
        '["a\\"b", ' + "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH + "]",  # after an escaped quote
    ],
)
def test_levels_after_strings_and_closed_levels_still_count(text: str) -> None:
    with pytest.raises(WebhookError, match="nests deeper than"):
        json_body(body(text), "kudosity")


def test_only_nesting_counts_not_brackets() -> None:
    many_shallow = "[" + ",".join(["[[1],{}]"] * 100) + "]"  # 401 brackets, 3 levels
    in_strings = '{"a": "' + "[{" * 100 + '\\"[{", "b": ["\\\\", "]]"]}'  # escapes and brackets in strings
    assert len(json_body(body(many_shallow), "smskit")) == 100
    assert json_body(body(in_strings), "smskit")["b"] == ["\\", "]]"]


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b'{"a": "caf\xe9"}', "the webhook body is not UTF-8"),
        (b'{"a": NaN}', "the webhook body is not JSON (ValueError)"),
        (b'{"a": 1e999}', "the webhook body is not JSON (ValueError)"),
        (b'{"a": ', "the webhook body is not JSON (JSONDecodeError)"),
    ],
)
def test_a_body_that_is_not_strict_json_is_a_400_naming_the_provider(raw: bytes, reason: str) -> None:
    with pytest.raises(WebhookError) as refused:
        json_body(body(raw), "mesms")
    assert (str(refused.value), refused.value.status_code, refused.value.provider) == (reason, 400, "mesms")


def test_the_caller_names_what_it_read() -> None:
    with pytest.raises(WebhookError, match=r"^smskit: the push body is not JSON"):
        json_body(body("nope"), "smskit", what="smskit: the push body")


@pytest.mark.parametrize(
    ("a", "b", "equal"),
    [
        ("tok-1", "tok-1", True),
        (b"tok-1", "tok-1", True),
        ("tok-1", b"tok-1", True),
        ("tok-1", "tok-2", False),
        ("tok-1", None, False),
        (None, "tok-1", False),
        (None, None, False),  # no secret configured and none sent is not a match
        ("", "", True),  # every verifier refuses an empty webhook_secret before it compares
    ],
)
def test_constant_time_equals(a: str | bytes | None, b: str | bytes | None, equal: bool) -> None:
    assert constant_time_equals(a, b) is equal


def test_a_header_is_found_by_any_case_or_its_default() -> None:
    req = WebhookRequest("POST", "/hook", headers={"X-Token": "t"})
    assert (req.header("x-TOKEN"), req.header("X-Other"), req.header("X-Other", "none")) == ("t", None, "none")
