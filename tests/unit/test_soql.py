"""The SOQL subset: parser, binder and evaluator, with hypothesis properties against a reference predicate."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from smsrelay_salesforce.schema import default_metadata_dir, load_schema
from smsrelay_salesforce.testing.soql import And, Comparison, DateRange, Not, Or, SoqlError, bind, execute, parse

SCHEMA = load_schema(default_metadata_dir())
MSG = "SMS_Message__c"
NOW = datetime(2026, 3, 11, 15, 30, tzinfo=UTC)  # a Wednesday


def run(q, rows, now=NOW):
    bound = bind(parse(q), SCHEMA)
    return execute(bound, SCHEMA, rows, lambda obj, i: None, now)


def test_parse_builds_an_ast():
    q = parse(
        "select Id, Contact__r.FirstName from SMS_Message__c where not (Status__c in ('Queued', 'Sending') "
        "or Attempts__c >= 3) and To__c like '+61%' order by CreatedDate desc nulls last, Id limit 10 offset 5"
    )
    assert q.sobject == "SMS_Message__c"
    assert [f.path for f in q.fields] == [("Id",), ("Contact__r", "FirstName")]
    assert isinstance(q.where, And)
    neg, like = q.where.items
    assert isinstance(neg, Not) and isinstance(neg.item, Or)
    assert neg.item.items[0] == Comparison(neg.item.items[0].field, "IN", ("Queued", "Sending"), neg.item.items[0].pos)
    assert isinstance(like, Comparison) and like.op == "LIKE"
    assert [(o.field.path, o.descending, o.nulls_last) for o in q.order_by] == [
        (("CreatedDate",), True, True),
        (("Id",), False, False),
    ]
    assert (q.limit, q.offset) == (10, 5)


@pytest.mark.parametrize(
    ("literal", "expected"),
    [
        ("2026-01-31T09:00:00Z", datetime(2026, 1, 31, 9, tzinfo=UTC)),
        ("2026-01-31T09:00:00.250+02:00", datetime(2026, 1, 31, 7, 0, 0, 250000, tzinfo=UTC)),
        ("2026-01-31T09:00:00-0500", datetime(2026, 1, 31, 14, tzinfo=UTC)),
        ("TODAY", DateRange("TODAY")),
        ("LAST_N_DAYS:7", DateRange("LAST_N_DAYS", 7)),
        ("null", None),
    ],
)
def test_datetime_literals(literal, expected):
    q = parse(f"SELECT Id FROM {MSG} WHERE Send_At__c = {literal}")
    assert isinstance(q.where, Comparison) and q.where.value == expected


def test_string_escapes():
    q = parse(r"SELECT Id FROM Contact WHERE LastName = 'O\'Brien \\ \n'")
    assert q.where.value == "O'Brien \\ \n"


@pytest.mark.parametrize(
    ("query", "code", "fragment"),
    [
        ("SELECT FROM Contact", "MALFORMED_QUERY", "unexpected token: FROM"),
        ("SELECT Id FROM Contact WHERE", "MALFORMED_QUERY", "<EOF>"),
        ("SELECT Id FROM Contact LIMIT -1", "MALFORMED_QUERY", "LIMIT"),
        ('SELECT Id FROM Contact WHERE LastName = "x"', "MALFORMED_QUERY", "unexpected token"),
        ("SELECT Id, id FROM Contact", "MALFORMED_QUERY", "duplicate field selected"),
        ("SELECT Id FROM Contact c", "MALFORMED_QUERY", "aliases"),
        ("SELECT Id FROM Contact WITH SECURITY_ENFORCED", "MALFORMED_QUERY", "WITH is valid SOQL but not supported"),
        ("SELECT Id FROM Contact FOR UPDATE", "MALFORMED_QUERY", "FOR is valid SOQL but not supported"),
        ("SELECT toLabel(LastName) FROM Contact", "MALFORMED_QUERY", "not supported by the org emulator"),
        ("SELECT Id FROM Contact WHERE Id IN (SELECT ContactId FROM Case)", "MALFORMED_QUERY", "semi-joins"),
        ("SELECT COUNT(), Id FROM Contact", "MALFORMED_QUERY", "COUNT() cannot be combined"),
        ("SELECT COUNT() FROM Contact ORDER BY Id", "MALFORMED_QUERY", "ORDER BY cannot be used with COUNT()"),
        ("SELECT Id FROM Contact WHERE CreatedDate < NOW", "MALFORMED_QUERY", "NOW is not a SOQL date literal"),
        ("SELECT Id FROM Contact WHERE LastName = 'a\\q'", "MALFORMED_QUERY", "illegal escape"),
        ("SELECT Id FROM Contact WHERE Id = 'a' AND Id = 'b' OR Id = 'c'", "MALFORMED_QUERY", "use parentheses"),
    ],
)
def test_parse_errors_point_at_the_problem(query, code, fragment):
    with pytest.raises(SoqlError) as info:
        parse(query)
    assert info.value.code == code
    assert fragment in info.value.message
    assert "ERROR at Row:1:Column:" in info.value.message


@pytest.mark.parametrize(
    ("query", "code", "fragment"),
    [
        ("SELECT Nope FROM Contact", "INVALID_FIELD", "No such column 'Nope' on entity 'Contact'"),
        ("SELECT Contact.FirstName FROM SMS_Message__c", "INVALID_FIELD", "append the '__r'"),
        ("SELECT Id FROM Contacts", "INVALID_TYPE", "sObject type 'Contacts' is not supported"),
        (f"SELECT Id FROM {MSG} WHERE Attempts__c = '3'", "MALFORMED_QUERY", "must be of type double"),
        (f"SELECT Id FROM {MSG} WHERE Send_At__c = 2026-01-01", "MALFORMED_QUERY", "must be of type dateTime"),
        ("SELECT Id FROM SMS_Consent__c WHERE Opted_Out__c = 'true'", "MALFORMED_QUERY", "must be of type boolean"),
        (f"SELECT Id FROM {MSG} WHERE Body__c = 'x'", "INVALID_FIELD", "can not be filtered"),
        (f"SELECT Id FROM {MSG} WHERE Attempts__c LIKE '1%'", "MALFORMED_QUERY", "LIKE needs a text field"),
        (f"SELECT Id FROM {MSG} WHERE To__c = TODAY", "MALFORMED_QUERY", "cannot be compared with a date literal"),
        (f"SELECT Id FROM {MSG} WHERE To__c > null", "MALFORMED_QUERY", "invalid operator on null"),
        ("SELECT Id FROM Contact OFFSET 2001", "NUMBER_OUTSIDE_VALID_RANGE", "2000"),
    ],
)
def test_binding_checks_fields_and_literal_types(query, code, fragment):
    with pytest.raises(SoqlError) as info:
        bind(parse(query), SCHEMA)
    assert info.value.code == code
    assert fragment in info.value.message


def test_comparisons_are_case_insensitive_and_not_equal_matches_null():
    rows = [{"Id": "1", "To__c": "ABC"}, {"Id": "2", "To__c": None}, {"Id": "3", "To__c": "xyz"}]
    assert [r["Id"] for r in run(f"SELECT Id FROM {MSG} WHERE To__c = 'abc'", rows)] == ["1"]
    assert [r["Id"] for r in run(f"SELECT Id FROM {MSG} WHERE To__c != 'abc'", rows)] == ["2", "3"]
    assert [r["Id"] for r in run(f"SELECT Id FROM {MSG} WHERE To__c NOT IN ('xyz')", rows)] == ["1", "2"]
    assert [r["Id"] for r in run(f"SELECT Id FROM {MSG} WHERE To__c > 'b'", rows)] == ["3"]


def test_like_wildcards_and_escapes():
    rows = [{"Id": str(i), "To__c": v} for i, v in enumerate(["50%", "5000", "a_b", "axb", None])]
    assert [r["To__c"] for r in run(rf"SELECT Id FROM {MSG} WHERE To__c LIKE '50\%'", rows)] == ["50%"]
    assert [r["To__c"] for r in run(f"SELECT Id FROM {MSG} WHERE To__c LIKE '5%'", rows)] == ["50%", "5000"]
    assert [r["To__c"] for r in run(rf"SELECT Id FROM {MSG} WHERE To__c LIKE 'a\_b'", rows)] == ["a_b"]
    assert [r["To__c"] for r in run(f"SELECT Id FROM {MSG} WHERE To__c LIKE 'A_B'", rows)] == ["a_b", "axb"]


def test_ids_match_in_15_or_18_characters():
    rows = [{"Id": "a025g0000000003AAA", "Contact__c": "0035g0000000002AAA"}]
    assert run(f"SELECT Id FROM {MSG} WHERE Contact__c = '0035g0000000002'", rows) == rows
    assert run(f"SELECT Id FROM {MSG} WHERE Id IN ('a025g0000000003AAA')", rows) == rows


@pytest.mark.parametrize(
    ("literal", "start", "end"),
    [
        ("TODAY", datetime(2026, 3, 11, tzinfo=UTC), datetime(2026, 3, 12, tzinfo=UTC)),
        ("YESTERDAY", datetime(2026, 3, 10, tzinfo=UTC), datetime(2026, 3, 11, tzinfo=UTC)),
        ("TOMORROW", datetime(2026, 3, 12, tzinfo=UTC), datetime(2026, 3, 13, tzinfo=UTC)),
        ("THIS_WEEK", datetime(2026, 3, 8, tzinfo=UTC), datetime(2026, 3, 15, tzinfo=UTC)),
        ("LAST_MONTH", datetime(2026, 2, 1, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=UTC)),
        ("NEXT_YEAR", datetime(2027, 1, 1, tzinfo=UTC), datetime(2028, 1, 1, tzinfo=UTC)),
        ("LAST_N_DAYS:2", datetime(2026, 3, 9, tzinfo=UTC), datetime(2026, 3, 12, tzinfo=UTC)),
        ("NEXT_N_DAYS:2", datetime(2026, 3, 12, tzinfo=UTC), datetime(2026, 3, 14, tzinfo=UTC)),
        ("N_DAYS_AGO:3", datetime(2026, 3, 8, tzinfo=UTC), datetime(2026, 3, 9, tzinfo=UTC)),
    ],
)
def test_relative_date_literals_are_whole_utc_days(literal, start, end):
    value = parse(f"SELECT Id FROM {MSG} WHERE Send_At__c = {literal}").where.value
    assert value.bounds(NOW) == (start, end)


def test_date_range_operators():
    times = [datetime(2026, 3, d, 12, tzinfo=UTC) for d in (10, 11, 12)]
    rows = [{"Id": str(i), "Send_At__c": t} for i, t in enumerate(times)]
    ids = lambda op: [r["Id"] for r in run(f"SELECT Id FROM {MSG} WHERE Send_At__c {op} TODAY", rows)]  # noqa: E731
    assert (ids("="), ids("!="), ids("<"), ids("<="), ids(">"), ids(">=")) == (
        ["1"], ["0", "2"], ["0"], ["0", "1"], ["2"], ["1", "2"],
    )  # fmt: skip


def test_order_by_nulls_and_limit_offset():
    rows = [{"Id": str(i), "Attempts__c": a} for i, a in enumerate([2.0, None, 1.0, 3.0, None])]
    order = lambda clause: [r["Id"] for r in run(f"SELECT Id FROM {MSG} ORDER BY {clause}", rows)]  # noqa: E731
    assert order("Attempts__c") == ["1", "4", "2", "0", "3"]  # nulls first by default
    assert order("Attempts__c DESC") == ["1", "4", "3", "0", "2"]
    assert order("Attempts__c DESC NULLS LAST") == ["3", "0", "2", "1", "4"]
    assert order("Attempts__c NULLS LAST LIMIT 2 OFFSET 1") == ["0", "3"]


# -- properties -------------------------------------------------------------------------------------

STATUSES = ["Queued", "Sending", "Sent", "Failed"]
T0 = datetime(2026, 3, 11, tzinfo=UTC)

records = st.lists(
    st.fixed_dictionaries(
        {
            "Status__c": st.sampled_from([*STATUSES, None]),
            "Attempts__c": st.one_of(st.none(), st.integers(0, 5).map(float)),
            "Send_At__c": st.one_of(st.none(), st.integers(-3, 3).map(lambda h: T0 + timedelta(hours=h))),
            "To__c": st.one_of(st.none(), st.sampled_from(["+61400", "+61499", "+1555", "0400"])),
        }
    ),
    max_size=12,
).map(lambda rows: [{"Id": f"a02{i:015d}", **r} for i, r in enumerate(rows)])


def _cond():
    status = st.tuples(st.just("Status__c"), st.sampled_from(["=", "!="]), st.sampled_from([*STATUSES, None]))
    attempts = st.tuples(
        st.just("Attempts__c"), st.sampled_from(["=", "!=", "<", "<=", ">", ">="]), st.integers(0, 5).map(float)
    )
    send_at = st.tuples(
        st.just("Send_At__c"),
        st.sampled_from(["<", "<=", ">", ">="]),
        st.integers(-3, 3).map(lambda h: T0 + timedelta(hours=h)),
    )
    in_list = st.tuples(st.just("Status__c"), st.sampled_from(["IN", "NOT IN"]), st.lists(st.sampled_from(STATUSES),
                        min_size=1, max_size=3).map(tuple))  # fmt: skip
    like = st.tuples(st.just("To__c"), st.just("LIKE"), st.sampled_from(["+61%", "%99", "0_00", "%"]))
    return st.one_of(status, attempts, send_at, in_list, like)


exprs = st.recursive(
    _cond(),
    lambda inner: st.one_of(
        st.tuples(st.just("AND"), inner, inner),
        st.tuples(st.just("OR"), inner, inner),
        st.tuples(st.just("NOT"), inner),
    ),
    max_leaves=6,
)


def _lit(v):
    if v is None:
        return "null"
    if isinstance(v, datetime):
        return v.strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(v, float):
        return str(int(v))
    return "'" + v + "'"


def render(e):
    if e[0] in {"AND", "OR"}:
        return f"({render(e[1])} {e[0]} {render(e[2])})"
    if e[0] == "NOT":
        return f"(NOT {render(e[1])})"
    field, op, value = e
    if op in {"IN", "NOT IN"}:
        return f"{field} {op} ({', '.join(_lit(v) for v in value)})"
    return f"{field} {op} {_lit(value)}"


def reference(e, r):
    """What the condition means, written independently of the evaluator."""
    if e[0] == "AND":
        return reference(e[1], r) and reference(e[2], r)
    if e[0] == "OR":
        return reference(e[1], r) or reference(e[2], r)
    if e[0] == "NOT":
        return not reference(e[1], r)
    field, op, value = e
    actual = r[field]
    if op == "=":
        return actual == value
    if op == "!=":
        return actual != value
    if op == "IN":
        return actual in value
    if op == "NOT IN":
        return actual not in value
    if op == "LIKE":
        import fnmatch

        return actual is not None and fnmatch.fnmatchcase(actual, value.replace("%", "*").replace("_", "?"))
    if actual is None:
        return False
    return {"<": actual < value, "<=": actual <= value, ">": actual > value, ">=": actual >= value}[op]


@settings(max_examples=150, deadline=None)
@given(rows=records, e=exprs)
def test_where_matches_a_reference_predicate(rows, e):
    got = [r["Id"] for r in run(f"SELECT Id FROM {MSG} WHERE {render(e)}", rows)]
    assert got == [r["Id"] for r in rows if reference(e, r)]


@settings(max_examples=80, deadline=None)
@given(rows=records, desc=st.booleans(), nulls_last=st.booleans(), limit=st.integers(0, 15))
def test_order_by_is_a_sorted_permutation(rows, desc, nulls_last, limit):
    clause = f"Attempts__c {'DESC' if desc else 'ASC'} NULLS {'LAST' if nulls_last else 'FIRST'}"
    got = run(f"SELECT Id FROM {MSG} ORDER BY {clause} LIMIT {limit}", rows)
    full = run(f"SELECT Id FROM {MSG} ORDER BY {clause}", rows)
    assert got == full[:limit]
    assert sorted(r["Id"] for r in full) == sorted(r["Id"] for r in rows)
    values = [r["Attempts__c"] for r in full]
    present = [v for v in values if v is not None]
    assert present == sorted(present, reverse=desc)
    nulls = len(values) - len(present)
    assert all(v is None for v in (values[len(present) :] if nulls_last else values[:nulls]))


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_arbitrary_text_never_crashes_the_parser(text):
    try:
        query = parse(text)
    except SoqlError as exc:
        assert exc.code == "MALFORMED_QUERY" and exc.message
    else:
        assert query.sobject and (query.fields or query.count) and query.source == text


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(["SELECT", "Id", ",", "FROM", "Contact", "WHERE", "LastName", "=", "'x'", "(",
                                 ")", "AND", "OR", "NOT", "IN", "ORDER", "BY", "LIMIT", "5", "null", "TODAY"]),
                max_size=14))  # fmt: skip
def test_token_soup_parses_or_fails_cleanly(tokens):
    try:
        bound = bind(parse(" ".join(tokens)), SCHEMA)
    except SoqlError as exc:
        assert exc.code in {"MALFORMED_QUERY", "INVALID_FIELD", "INVALID_TYPE"} and exc.message
    else:
        assert bound.query.sobject == "Contact" and set(bound.fields) >= set(bound.query.fields)


def test_dates_compare_with_date_fields_only():
    assert isinstance(parse("SELECT Id FROM Contact WHERE CreatedDate > 2026-01-01T00:00:00Z").where.value, datetime)
    assert parse("SELECT Id FROM Contact WHERE X__c = 2026-01-01").where.value == date(2026, 1, 1)
