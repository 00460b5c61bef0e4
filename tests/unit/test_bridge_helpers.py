"""Small pure parts of the bridge: SOQL quoting, dateTimes, template fields, intervals, redacted JSON logs."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from smsrelay_salesforce.cli import JsonFormatter, parse_interval
from smsrelay_salesforce.org import format_datetime, parse_datetime, soql_datetime, soql_quote
from smsrelay_salesforce.push import template_fields
from smsrelay_salesforce.summary import Summary

from smsrelay.redaction import register_secret


@given(st.text())
def test_soql_quote_always_yields_one_closed_literal(value: str) -> None:
    quoted = soql_quote(value)
    assert quoted.startswith("'") and quoted.endswith("'")
    inner = quoted[1:-1]
    # Every quote inside is escaped, so the value cannot end the literal early.
    i = 0
    while i < len(inner):
        if inner[i] == "\\":
            i += 2
            continue
        assert inner[i] != "'"
        i += 1


@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)))
def test_datetimes_round_trip_at_millisecond_precision(dt: datetime) -> None:
    back = parse_datetime(format_datetime(dt))
    assert back == dt.replace(microsecond=dt.microsecond // 1000 * 1000)
    assert parse_datetime(soql_datetime(dt)) == dt.replace(microsecond=0)


def test_salesforce_datetime_shapes() -> None:
    assert parse_datetime("2026-03-01T10:00:00.000+0000") == datetime(2026, 3, 1, 10, tzinfo=UTC)
    assert parse_datetime("2026-03-01T10:00:00.000+1000") == datetime(2026, 3, 1, 0, tzinfo=UTC)
    assert parse_datetime(None) is None


def test_template_fields_are_the_columns_the_template_reads() -> None:
    src = (
        "{% if Lead__r %}{{ Lead__r.FirstName }}{% else %}{{ Contact__r.Account.Name }}{% endif %}"
        " {{ Body__c | upper }}"
    )
    assert template_fields(src) == {"Lead__r.FirstName", "Contact__r.Account.Name", "Body__c"}


def test_intervals() -> None:
    assert parse_interval("60s") == 60 and parse_interval("5m") == 300 and parse_interval("1h") == 3600
    assert parse_interval("90") == 90
    import argparse

    with pytest.raises(argparse.ArgumentTypeError):
        parse_interval("every minute")


def test_json_log_lines_are_redacted() -> None:
    register_secret("00Dxx!tok-abcdef123456")
    record = logging.LogRecord(
        "smsrelay.salesforce", logging.INFO, __file__, 1, "token %s", ("00Dxx!tok-abcdef123456",), None
    )
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "token ***" and line["level"] == "info"


def test_summary_line_and_table() -> None:
    s = Summary(sent=3, rejected=1, deliveries_updated=2, replies=1)
    s.add_calls("claim", 2)
    s.add_calls("write-back", 1)
    assert (
        s.line() == "sent 3, updated 3, failed 0, skipped 0, rejected 1; Salesforce API calls 3 (claim 2, write-back 1)"
    )
    assert "API calls: total" in s.table() and s.failures == 0
