"""A subset of SOQL: tokenizer, recursive-descent parser into an AST, binder and evaluator.

Supported (the org emulator answers anything else with ``MALFORMED_QUERY``,
never by ignoring a clause)::

    SELECT field[, field ...] | COUNT()
    FROM Object
    [WHERE cond]      cond := c AND c ... | c OR c ... (mixing needs parentheses) | NOT c | ( cond )
                             | field (= != <> < <= > >=) literal
                             | field [NOT] IN (literal, ...) | field LIKE 'pattern'
    [ORDER BY field [ASC|DESC] [NULLS FIRST|LAST], ...]
    [LIMIT n] [OFFSET n]

Fields may be relationship paths (``Contact__r.FirstName``, ``Owner.Name``).
Literals: 'strings' (with SOQL's backslash escapes), numbers, ``true``/``false``,
``null``, dates (``2026-01-31``), datetimes (``2026-01-31T09:00:00Z``, ``...+02:00``,
``...00.000+0000``), and the relative date literals (``TODAY``, ``YESTERDAY``,
``LAST_N_DAYS:7`` ...), which are ranges of whole UTC days.

``NOW`` is not a SOQL literal (SOQL reference, "Date Formats and Date Literals"):
the issue's default filter ``Send_At__c <= NOW`` is shorthand for a datetime
literal of the current time, which the bridge fills in before it queries. The
parser rejects a bare ``NOW`` the way Salesforce does, so a bridge that forgot to
substitute it fails here rather than in production.

>>> q = parse("SELECT Id, Contact__r.FirstName FROM SMS_Message__c WHERE Status__c = 'Queued' LIMIT 5")
>>> q.sobject, [".".join(f.path) for f in q.fields], q.limit
('SMS_Message__c', ['Id', 'Contact__r.FirstName'], 5)
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from smsrelay_salesforce.schema import FieldSchema, ObjectSchema, OrgSchema

__all__ = [
    "And",
    "Comparison",
    "DateRange",
    "FieldRef",
    "Not",
    "Or",
    "OrderItem",
    "Query",
    "SoqlError",
    "bind",
    "execute",
    "parse",
    "resolve",
]


class SoqlError(ValueError):
    """A query Salesforce would refuse: ``code`` is its errorCode (``MALFORMED_QUERY``, ``INVALID_FIELD`` ...)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# --------------------------------------------------------------------------- tokens

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,3})?(?:Z|[+-]\d{2}:?\d{2}))
  | (?P<date>\d{4}-\d{2}-\d{2})
  | (?P<number>[+-]?\d+(?:\.\d+)?)
  | (?P<string>'(?:[^'\\]|\\.)*')
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
  | (?P<op><=|>=|!=|<>|=|<|>)
  | (?P<punct>[(),:])
    """,
    re.VERBOSE,
)

_KEYWORDS = frozenset(
    [
        "SELECT",
        "FROM",
        "WHERE",
        "AND",
        "OR",
        "NOT",
        "IN",
        "LIKE",
        "ORDER",
        "BY",
        "ASC",
        "DESC",
        "NULLS",
        "FIRST",
        "LAST",
        "LIMIT",
        "OFFSET",
        "NULL",
        "TRUE",
        "FALSE",
    ]
)
# Real SOQL, but not in the emulator's subset: named so the error says so instead of "unexpected token".
_UNSUPPORTED = frozenset(
    [
        "GROUP",
        "HAVING",
        "WITH",
        "FOR",
        "USING",
        "TYPEOF",
        "INCLUDES",
        "EXCLUDES",
        "ROLLUP",
        "CUBE",
        "SCOPE",
        "ALL",
        "UPDATE",
        "VIEW",
        "REFERENCE",
        "TRACKING",
        "VIEWSTAT",
        "DATA",
        "CATEGORY",
        "FORMAT",
        "CONVERTCURRENCY",
        "TOLABEL",
        "FIELDS",
    ]
)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", '"': '"', "'": "'", "\\": "\\"}


@dataclass(frozen=True)
class Token:
    kind: str  # ident, keyword, string, number, date, datetime, op, punct, eof
    text: str
    pos: int

    @property
    def upper(self) -> str:
        return self.text.upper()


def _error_at(source: str, pos: int, message: str, code: str = "MALFORMED_QUERY") -> SoqlError:
    # Salesforce's shape: the query, a caret under the spot, "ERROR at Row:r:Column:c", the reason.
    row = source.count("\n", 0, pos) + 1
    line_start = source.rfind("\n", 0, pos) + 1
    col = pos - line_start + 1
    line = source.split("\n")[row - 1] if source else ""
    return SoqlError(code, f"\n{line}\n{' ' * (col - 1)}^\nERROR at Row:{row}:Column:{col}\n{message}")


def tokenize(source: str) -> list[Token]:
    """Split a query into tokens; keywords are recognised case-insensitively."""
    tokens: list[Token] = []
    pos = 0
    while pos < len(source):
        m = _TOKEN.match(source, pos)
        if m is None:
            raise _error_at(source, pos, f"unexpected token: '{source[pos]}'")
        kind = m.lastgroup or ""
        text = m.group()
        if kind != "ws":
            if kind == "ident" and "." not in text and text.upper() in _KEYWORDS:
                kind = "keyword"
            tokens.append(Token(kind, text, pos))
        pos = m.end()
    tokens.append(Token("eof", "<EOF>", len(source)))
    return tokens


# --------------------------------------------------------------------------- AST


@dataclass(frozen=True)
class FieldRef:
    """A field or a relationship path, e.g. ``("Contact__r", "FirstName")``."""

    path: tuple[str, ...]
    pos: int = 0

    @property
    def text(self) -> str:
        return ".".join(self.path)


@dataclass(frozen=True)
class DateRange:
    """A relative date literal such as ``TODAY`` or ``LAST_N_DAYS:7``."""

    name: str
    n: int | None = None

    def bounds(self, now: datetime) -> tuple[datetime, datetime]:
        """The half-open UTC interval [start, end) the literal stands for at ``now``."""
        # SOQL reference, "Date Formats and Date Literals". ASSUMPTION: the org's time zone is UTC.
        today = datetime(now.year, now.month, now.day, tzinfo=UTC)
        day = timedelta(days=1)
        n = self.n or 0
        name = self.name
        if name == "TODAY":
            return today, today + day
        if name == "YESTERDAY":
            return today - day, today
        if name == "TOMORROW":
            return today + day, today + 2 * day
        if name in {"THIS_WEEK", "LAST_WEEK", "NEXT_WEEK"}:
            # ASSUMPTION: weeks start on Sunday, as in the en_US locale.
            start = today - timedelta(days=(today.weekday() + 1) % 7)
            shift = {"THIS_WEEK": 0, "LAST_WEEK": -7, "NEXT_WEEK": 7}[name]
            start += timedelta(days=shift)
            return start, start + 7 * day
        if name in {"THIS_MONTH", "LAST_MONTH", "NEXT_MONTH"}:
            y, m = today.year, today.month + {"THIS_MONTH": 0, "LAST_MONTH": -1, "NEXT_MONTH": 1}[name]
            y, m = y + (m - 1) // 12, (m - 1) % 12 + 1
            start = datetime(y, m, 1, tzinfo=UTC)
            end = datetime(y + m // 12, m % 12 + 1, 1, tzinfo=UTC)
            return start, end
        if name in {"THIS_YEAR", "LAST_YEAR", "NEXT_YEAR"}:
            y = today.year + {"THIS_YEAR": 0, "LAST_YEAR": -1, "NEXT_YEAR": 1}[name]
            return datetime(y, 1, 1, tzinfo=UTC), datetime(y + 1, 1, 1, tzinfo=UTC)
        if name in {"LAST_90_DAYS", "LAST_N_DAYS"}:
            n = 90 if name == "LAST_90_DAYS" else n
            return today - n * day, today + day
        if name in {"NEXT_90_DAYS", "NEXT_N_DAYS"}:
            n = 90 if name == "NEXT_90_DAYS" else n
            return today + day, today + (n + 1) * day
        if name == "N_DAYS_AGO":
            return today - n * day, today - (n - 1) * day
        raise AssertionError(name)


_DATE_LITERALS = frozenset(
    [
        "TODAY",
        "YESTERDAY",
        "TOMORROW",
        "THIS_WEEK",
        "LAST_WEEK",
        "NEXT_WEEK",
        "THIS_MONTH",
        "LAST_MONTH",
        "NEXT_MONTH",
        "THIS_YEAR",
        "LAST_YEAR",
        "NEXT_YEAR",
        "LAST_90_DAYS",
        "NEXT_90_DAYS",
    ]
)
_DATE_LITERALS_N = frozenset({"LAST_N_DAYS", "NEXT_N_DAYS", "N_DAYS_AGO"})

Literal = str | float | bool | None | date | datetime | DateRange


@dataclass(frozen=True)
class Comparison:
    field: FieldRef
    op: str  # = != < <= > >= IN NOT IN LIKE
    value: Literal | tuple[Literal, ...]
    pos: int = 0


@dataclass(frozen=True)
class And:
    items: tuple[Expr, ...]


@dataclass(frozen=True)
class Or:
    items: tuple[Expr, ...]


@dataclass(frozen=True)
class Not:
    item: Expr


Expr = Comparison | And | Or | Not


@dataclass(frozen=True)
class OrderItem:
    field: FieldRef
    descending: bool = False
    nulls_last: bool = False


@dataclass
class Query:
    """A parsed query. ``count`` is true for ``SELECT COUNT()``."""

    sobject: str
    fields: list[FieldRef] = field(default_factory=list)
    count: bool = False
    where: Expr | None = None
    order_by: list[OrderItem] = field(default_factory=list)
    limit: int | None = None
    offset: int | None = None
    source: str = ""


# --------------------------------------------------------------------------- parser


class _Parser:
    def __init__(self, source: str) -> None:
        self.source = source
        self.tokens = tokenize(source)
        self.i = 0

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def fail(self, message: str | None = None, tok: Token | None = None) -> SoqlError:
        t = tok or self.tok
        if message is None:
            if t.kind == "ident" and t.upper in _UNSUPPORTED:
                message = f"{t.upper} is valid SOQL but not supported by the org emulator"
            else:
                message = f"unexpected token: {t.text}" if t.kind != "eof" else "unexpected token: <EOF>"
        return _error_at(self.source, t.pos, message)

    def at(self, *keywords: str) -> bool:
        return self.tok.kind == "keyword" and self.tok.upper in keywords

    def expect_kw(self, kw: str) -> Token:
        if not self.at(kw):
            raise self.fail(None if self.tok.kind == "eof" else f"expecting {kw}, unexpected token: {self.tok.text}")
        return self.advance()

    def advance(self) -> Token:
        t = self.tok
        self.i += 1
        return t

    def punct(self, ch: str) -> bool:
        if self.tok.kind == "punct" and self.tok.text == ch:
            self.i += 1
            return True
        return False

    def parse(self) -> Query:
        self.expect_kw("SELECT")
        fields, count = self.select_list()
        self.expect_kw("FROM")
        if self.tok.kind != "ident" or "." in self.tok.text:
            raise self.fail()
        q = Query(sobject=self.advance().text, fields=fields, count=count, source=self.source)
        if self.tok.kind == "ident" and self.tok.upper not in _UNSUPPORTED:
            # An alias (FROM Contact c): legal SOQL the subset leaves out.
            raise self.fail("object aliases are valid SOQL but not supported by the org emulator")
        if self.at("WHERE"):
            self.advance()
            q.where = self.expr()
        if self.at("ORDER"):
            self.advance()
            self.expect_kw("BY")
            q.order_by = self.order_list()
        if self.at("LIMIT"):
            self.advance()
            q.limit = self.integer("LIMIT")
        if self.at("OFFSET"):
            self.advance()
            q.offset = self.integer("OFFSET")
        if self.tok.kind != "eof":
            raise self.fail()
        if q.count and q.order_by:
            raise self.fail("ORDER BY cannot be used with COUNT()", self.tokens[0])
        return q

    def integer(self, what: str) -> int:
        t = self.tok
        if t.kind != "number" or not re.fullmatch(r"\d+", t.text):
            raise self.fail(f"{what} must be a non-negative integer, unexpected token: {t.text}")
        self.advance()
        return int(t.text)

    def field_ref(self) -> FieldRef:
        t = self.tok
        if t.kind != "ident":
            raise self.fail()
        if t.upper in _UNSUPPORTED and "." not in t.text and self.tokens[self.i + 1].text == "(":
            raise self.fail()
        self.advance()
        if self.tok.kind == "punct" and self.tok.text == "(":
            raise self.fail(f"function {t.text}() is valid SOQL but not supported by the org emulator", t)
        return FieldRef(tuple(t.text.split(".")), t.pos)

    def select_list(self) -> tuple[list[FieldRef], bool]:
        if self.tok.kind == "ident" and self.tok.upper == "COUNT" and self.tokens[self.i + 1].text == "(":
            start = self.advance()
            self.punct("(")
            if not self.punct(")"):
                raise self.fail("COUNT(field) is an aggregate; the org emulator supports COUNT() only")
            if self.tok.kind == "punct" and self.tok.text == ",":
                raise self.fail("COUNT() cannot be combined with other fields", start)
            return [], True
        fields: list[FieldRef] = []
        seen: set[str] = set()
        while True:
            if self.tok.kind == "punct" and self.tok.text == "(":
                raise self.fail("subqueries are valid SOQL but not supported by the org emulator")
            ref = self.field_ref()
            key = ref.text.lower()
            if key in seen:
                raise self.fail(f"duplicate field selected: {ref.text}", self.tokens[self.i - 1])
            seen.add(key)
            fields.append(ref)
            if not self.punct(","):
                return fields, False

    def order_list(self) -> list[OrderItem]:
        items: list[OrderItem] = []
        while True:
            ref = self.field_ref()
            desc = False
            if self.at("ASC", "DESC"):
                desc = self.advance().upper == "DESC"
            nulls_last = False  # SOQL reference, ORDER BY: "By default, null values are sorted first."
            if self.at("NULLS"):
                self.advance()
                if not self.at("FIRST", "LAST"):
                    raise self.fail()
                nulls_last = self.advance().upper == "LAST"
            items.append(OrderItem(ref, desc, nulls_last))
            if not self.punct(","):
                return items

    # cond := factor (AND factor)* | factor (OR factor)*; factor := NOT factor | ( cond ) | comparison.
    # SOQL reference, "Condition Expression Syntax": mixing AND and OR needs parentheses, so a AND b OR c
    # is refused, as Salesforce refuses it, rather than given a precedence the org would not give it.
    def expr(self) -> Expr:
        items = [self.factor()]
        joiner: str | None = None
        while self.at("AND", "OR"):
            tok = self.tok
            if joiner is not None and tok.upper != joiner:
                raise self.fail(f"unexpected token: {tok.upper} (use parentheses to combine AND and OR)")
            joiner = tok.upper
            self.advance()
            items.append(self.factor())
        if joiner is None:
            return items[0]
        return And(tuple(items)) if joiner == "AND" else Or(tuple(items))

    def factor(self) -> Expr:
        if self.at("NOT"):
            self.advance()
            return Not(self.factor())
        if self.punct("("):
            if self.at("SELECT"):
                raise self.fail("semi-joins (IN (SELECT ...)) are valid SOQL but not supported by the org emulator")
            inner = self.expr()
            if not self.punct(")"):
                raise self.fail()
            return inner
        return self.comparison()

    def comparison(self) -> Comparison:
        ref = self.field_ref()
        t = self.tok
        if t.kind == "op":
            self.advance()
            op = "!=" if t.text == "<>" else t.text
            return Comparison(ref, op, self.literal(), t.pos)
        if self.at("LIKE"):
            self.advance()
            return Comparison(ref, "LIKE", self.literal(), t.pos)
        negate = False
        if self.at("NOT"):
            self.advance()
            negate = True
            if not self.at("IN"):
                raise self.fail()
        if self.at("IN"):
            self.advance()
            if not self.punct("("):
                raise self.fail()
            if self.at("SELECT"):
                raise self.fail("semi-joins (IN (SELECT ...)) are valid SOQL but not supported by the org emulator")
            values = [self.literal()]
            while self.punct(","):
                values.append(self.literal())
            if not self.punct(")"):
                raise self.fail()
            return Comparison(ref, "NOT IN" if negate else "IN", tuple(values), t.pos)
        raise self.fail()

    def literal(self) -> Literal:
        t = self.tok
        if t.kind == "string":
            self.advance()
            return _unescape(t.text[1:-1], self.source, t.pos)
        if t.kind == "number":
            self.advance()
            return float(t.text)
        if t.kind == "date":
            self.advance()
            try:
                return date.fromisoformat(t.text)
            except ValueError:
                raise self.fail(f"invalid date: {t.text}", t) from None
        if t.kind == "datetime":
            self.advance()
            return _parse_datetime_literal(t, self.source)
        if t.kind == "keyword" and t.upper in {"NULL", "TRUE", "FALSE"}:
            self.advance()
            return {"NULL": None, "TRUE": True, "FALSE": False}[t.upper]
        if t.kind == "ident" and t.upper in _DATE_LITERALS:
            self.advance()
            return DateRange(t.upper)
        if t.kind == "ident" and t.upper in _DATE_LITERALS_N:
            self.advance()
            if not self.punct(":") or self.tok.kind != "number" or not self.tok.text.isdigit():
                raise self.fail(f"{t.upper} needs a whole number, as in {t.upper}:7")
            return DateRange(t.upper, int(self.advance().text))
        if t.kind == "ident" and t.upper == "NOW":
            raise self.fail(
                "NOW is not a SOQL date literal; use a datetime literal such as 2026-01-31T09:00:00Z "
                "(the bridge substitutes the current time for NOW)"
            )
        raise self.fail()


def _unescape(body: str, source: str, pos: int) -> str:
    out: list[str] = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == "\\":
            nxt = body[i + 1]
            if nxt in _ESCAPES:
                out.append(_ESCAPES[nxt])
            elif nxt in "%_":
                out.append("\\" + nxt)  # kept escaped: LIKE treats it as a literal % or _
            else:
                raise _error_at(source, pos + i + 1, f"Invalid string literal: illegal escape sequence \\{nxt}")
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def _parse_datetime_literal(t: Token, source: str) -> datetime:
    text = t.text
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    elif re.search(r"[+-]\d{4}$", text):
        text = text[:-2] + ":" + text[-2:]
    try:
        return datetime.fromisoformat(text).astimezone(UTC)
    except ValueError:
        raise _error_at(source, t.pos, f"invalid dateTime: {t.text}") from None


def parse(source: str) -> Query:
    """Parse a SOQL query (the supported subset) into a :class:`Query`; raises :class:`SoqlError`.

    >>> parse("select count() from Contact where LastName like 'Sm%'").count
    True
    """
    return _Parser(source).parse()


# --------------------------------------------------------------------------- binding

_STRINGY = frozenset({"string", "textarea", "phone", "email", "url", "picklist", "multipicklist", "id", "reference"})
_NUMERIC = frozenset({"double", "int", "currency", "percent"})

Record = Mapping[str, Any]
Fetch = Callable[[str, str], Record | None]
# (object, calculated field, record) -> the value the API shows for it.
Computed = Callable[[ObjectSchema, FieldSchema, Record], Any]


def _resolve_path(schema: OrgSchema, obj: ObjectSchema, ref: FieldRef, query: Query) -> FieldSchema:
    cur = obj
    for part in ref.path[:-1]:
        lookup = cur.relationship(part)
        if lookup is None or not lookup.reference_to:
            raise _error_at(
                query.source,
                ref.pos,
                f"Didn't understand relationship '{part}' in field path. If you are attempting to use a custom "
                "relationship, be sure to append the '__r' after the custom relationship name.",
                "INVALID_FIELD",
            )
        cur = schema.object(lookup.reference_to[0])
    last = ref.path[-1]
    if not cur.has(last):
        raise _error_at(
            query.source, ref.pos, f"No such column '{last}' on entity '{cur.name}'.", "INVALID_FIELD"
        )  # fmt: skip
    return cur.field(last)


def _check_literal(query: Query, cmp: Comparison, f: FieldSchema, value: Literal) -> None:
    t = f.type
    where = cmp.pos
    if value is None:
        if cmp.op not in {"=", "!=", "IN", "NOT IN"}:
            raise _error_at(query.source, where, f"invalid operator on null for field '{f.name}'")
        return
    if t in {"datetime", "date"}:
        is_dt = isinstance(value, datetime)
        ok = isinstance(value, DateRange) or (is_dt if t == "datetime" else isinstance(value, date) and not is_dt)
        if not ok:
            kind = "dateTime" if t == "datetime" else "date"
            raise _error_at(
                query.source,
                where,
                f"value of filter criterion for field '{f.name}' must be of type {kind} and should not be "
                "enclosed in quotes",
            )
        return
    if isinstance(value, DateRange):
        raise _error_at(query.source, where, f"field '{f.name}' of type {t} cannot be compared with a date literal")
    if t == "boolean":
        if not isinstance(value, bool):
            raise _error_at(
                query.source, where, f"value of filter criterion for field '{f.name}' must be of type boolean "
                "and should not be enclosed in quotes"
            )  # fmt: skip
        return
    if t in _NUMERIC:
        if isinstance(value, bool) or not isinstance(value, float):
            raise _error_at(
                query.source, where, f"value of filter criterion for field '{f.name}' must be of type double "
                "and should not be enclosed in quotes"
            )  # fmt: skip
        return
    if not isinstance(value, str):
        raise _error_at(query.source, where, f"value of filter criterion for field '{f.name}' must be a quoted string")


def _bind_expr(
    schema: OrgSchema, obj: ObjectSchema, query: Query, e: Expr, fields: dict[FieldRef, FieldSchema]
) -> None:
    if isinstance(e, (And, Or)):
        for item in e.items:
            _bind_expr(schema, obj, query, item, fields)
        return
    if isinstance(e, Not):
        _bind_expr(schema, obj, query, e.item, fields)
        return
    f = _resolve_path(schema, obj, e.field, query)
    fields[e.field] = f
    if e.op == "LIKE" and f.type not in _STRINGY - {"id", "reference"}:
        raise _error_at(query.source, e.pos, f"invalid operator on field '{f.name}': LIKE needs a text field")
    if f.type == "textarea" and f.length > 255:
        # SOQL reference: long text area fields cannot be filtered.
        raise _error_at(query.source, e.pos, f"field '{f.name}' can not be filtered in a query call", "INVALID_FIELD")
    values = e.value if isinstance(e.value, tuple) else (e.value,)
    for v in values:
        _check_literal(query, e, f, v)


@dataclass
class Bound:
    """A query checked against the org's schema, ready to run."""

    query: Query
    obj: ObjectSchema
    fields: dict[FieldRef, FieldSchema]


def bind(query: Query, schema: OrgSchema) -> Bound:
    """Check the object, every field path and every literal's type against ``schema``."""
    if not schema.has(query.sobject):
        raise _error_at(
            query.source,
            query.source.lower().find(query.sobject.lower()),
            f"sObject type '{query.sobject}' is not supported. If you are attempting to use a custom object, be "
            "sure to append the '__c' after the entity name.",
            "INVALID_TYPE",
        )
    obj = schema.object(query.sobject)
    fields: dict[FieldRef, FieldSchema] = {}
    for ref in query.fields:
        fields[ref] = _resolve_path(schema, obj, ref, query)
    for item in query.order_by:
        f = _resolve_path(schema, obj, item.field, query)
        if f.type == "textarea" and f.length > 255:
            raise _error_at(query.source, item.field.pos, f"field '{f.name}' can not be sorted in a query call")
        fields[item.field] = f
    if query.where is not None:
        _bind_expr(schema, obj, query, query.where, fields)
    if query.offset is not None and query.offset > 2000:
        # SOQL reference, OFFSET: "The maximum offset is 2,000 rows."
        raise SoqlError("NUMBER_OUTSIDE_VALID_RANGE", "Maximum SOQL offset allowed is 2000")
    return Bound(query, obj, fields)


# --------------------------------------------------------------------------- evaluation


def resolve(
    schema: OrgSchema,
    obj: ObjectSchema,
    record: Record,
    path: Sequence[str],
    fetch: Fetch,
    computed: Computed | None = None,
) -> Any:
    """The value at a field path, following lookups with ``fetch(object, id)``; ``None`` past an empty lookup.

    ``computed(object, field, record)`` gives a calculated field's value (roll-up, formula).
    """
    cur_obj, cur = obj, record
    for part in path[:-1]:
        lookup = cur_obj.relationship(part)
        if lookup is None:
            return None
        ref_id = cur.get(lookup.name)
        if not ref_id:
            return None
        target = schema.object(lookup.reference_to[0])
        nxt = fetch(target.name, ref_id)
        if nxt is None:
            return None
        cur_obj, cur = target, nxt
    last = cur_obj.field(path[-1])
    if computed is not None and last.calculated:
        return computed(cur_obj, last, cur)
    return cur.get(last.name)


def _norm(value: Any, f: FieldSchema) -> Any:
    """A value in comparable form: case-folded text, 15-char ids, UTC datetimes."""
    if value is None:
        return None
    if f.type in {"id", "reference"} and isinstance(value, str):
        return value[:15]  # 15- and 18-char ids name the same record
    if isinstance(value, str):
        # SOQL and SOSL Reference, "Comparison Operators": "String comparisons using the equals
        # operator are case-sensitive for unique case-sensitive fields and case-insensitive for
        # all other fields", wherever the comparison sits (an OR too, not only the index path).
        return value if f.unique and f.case_sensitive else value.casefold()
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return float(value)
    return value


def _sort_key(value: Any, f: FieldSchema) -> Any:
    """How ORDER BY compares: a picklist by its values' order in the field's definition.

    SOQL and SOSL Reference, "ORDER BY": "Sorting on a picklist field is by the order of the
    values defined for the picklist, not alphabetically". A value outside the definition sorts
    after the defined ones, alphabetically.
    """
    if f.type in {"picklist", "multipicklist"} and f.picklist_values and isinstance(value, str):
        order = {v.casefold(): i for i, v in enumerate(f.picklist_values)}
        return (order.get(value.casefold(), len(order)), value.casefold())
    return _norm(value, f)


def _like(pattern: str) -> re.Pattern[str]:
    out = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if ch == "%" else "." if ch == "_" else re.escape(ch))
        i += 1
    return re.compile("".join(out), re.IGNORECASE | re.DOTALL)


def _as_datetime(v: Any) -> datetime | None:
    if isinstance(v, datetime):
        return v
    if isinstance(v, date):
        return datetime(v.year, v.month, v.day, tzinfo=UTC)
    return None


def _compare(op: str, actual: Any, literal: Any, f: FieldSchema, now: datetime) -> bool:
    if isinstance(literal, DateRange):
        v = _as_datetime(actual)
        if v is None:
            return op == "!="
        start, end = literal.bounds(now)
        return {
            "=": start <= v < end,
            "!=": not (start <= v < end),
            "<": v < start,
            "<=": v < end,
            ">": v >= end,
            ">=": v >= start,
        }[op]
    a, b = _norm(actual, f), _norm(literal, f)
    if op == "=":
        return bool(a == b)
    if op == "!=":
        return bool(a != b)  # SOQL: != matches records whose value is null
    if a is None or b is None:
        return False
    try:
        return bool({"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op])
    except TypeError:
        return False


class _Evaluator:
    def __init__(
        self, bound: Bound, schema: OrgSchema, fetch: Fetch, now: datetime, computed: Computed | None = None
    ) -> None:
        self.bound = bound
        self.schema = schema
        self.fetch = fetch
        self.now = now
        self.computed = computed
        self._likes: dict[str, re.Pattern[str]] = {}
        # Per comparison (by id: the query outlives this evaluator): a plain field = / != literal, as
        # (field name, field, normalised literal), or None; found once, not once per row.
        self._plain: dict[int, tuple[str, FieldSchema, Any] | None] = {}

    def _plain_equality(self, e: Comparison) -> tuple[str, FieldSchema, Any] | None:
        if len(e.field.path) != 1 or isinstance(e.value, DateRange | tuple):
            return None
        f = self.bound.fields[e.field]
        if self.computed is not None and f.calculated:
            return None
        return f.name, f, _norm(e.value, f)

    def value(self, record: Record, ref: FieldRef) -> Any:
        if len(ref.path) == 1:
            f = self.bound.fields[ref]
            if self.computed is not None and f.calculated:
                # A roll-up or formula is filtered and sorted on the value it shows, as in SOQL.
                return self.computed(self.bound.obj, f, record)
            return record.get(f.name)
        return resolve(self.schema, self.bound.obj, record, ref.path, self.fetch, self.computed)

    def test(self, e: Expr, record: Record) -> bool:
        # Loops, not all()/any() over a generator: this runs per row and term.
        if isinstance(e, And):
            for item in e.items:  # noqa: SIM110
                if not self.test(item, record):
                    return False
            return True
        if isinstance(e, Or):
            for item in e.items:  # noqa: SIM110
                if self.test(item, record):
                    return True
            return False
        if isinstance(e, Not):
            return not self.test(e.item, record)
        if e.op == "=" or e.op == "!=":
            key = id(e)
            if key not in self._plain:
                self._plain[key] = self._plain_equality(e)
            plain = self._plain[key]
            if plain is not None:  # what _compare does, with the literal normalised once
                name, field, literal = plain
                actual = _norm(record.get(name), field)
                return bool(actual == literal) if e.op == "=" else bool(actual != literal)
        f = self.bound.fields[e.field]
        actual = self.value(record, e.field)
        if e.op == "LIKE":
            if actual is None or not isinstance(e.value, str):
                return False
            pat = self._likes.get(e.value)
            if pat is None:
                pat = self._likes[e.value] = _like(e.value)
            return pat.fullmatch(str(actual)) is not None
        if e.op in {"IN", "NOT IN"}:
            assert isinstance(e.value, tuple)
            hit = any(_compare("=", actual, v, f, self.now) for v in e.value)
            return hit if e.op == "IN" else not hit
        return _compare(e.op, actual, e.value, f, self.now)


def execute(
    bound: Bound,
    schema: OrgSchema,
    records: Iterable[Record],
    fetch: Fetch,
    now: datetime,
    computed: Computed | None = None,
) -> list[Record]:
    """The records that match ``WHERE``, in ``ORDER BY`` order, after ``OFFSET`` and ``LIMIT``.

    ``records`` are the object's rows as dicts keyed by canonical field names;
    ``fetch(object, id)`` returns a related row for relationship paths;
    ``computed(object, field, record)`` the value of a roll-up or formula field.
    """
    q = bound.query
    if q.limit == 0:
        return []  # nothing to return, so nothing to match (LIMIT 0 checks the query, as bind did)
    ev = _Evaluator(bound, schema, fetch, now, computed)
    rows = [r for r in records if q.where is None or ev.test(q.where, r)]
    # Stable sorts from the last key to the first give a multi-key order with per-key direction and nulls.
    for item in reversed(q.order_by):
        f = bound.fields[item.field]
        keyed = [(_sort_key(ev.value(r, item.field), f), r) for r in rows]
        present = [kr for kr in keyed if kr[0] is not None]
        nulls = [kr[1] for kr in keyed if kr[0] is None]
        present.sort(key=lambda kr: kr[0], reverse=item.descending)
        ordered = [kr[1] for kr in present]
        rows = ordered + nulls if item.nulls_last else nulls + ordered
    start = q.offset or 0
    end = None if q.limit is None else start + q.limit
    return rows[start:end]
