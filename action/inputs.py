"""The action's inputs: read as the runner writes them, validated before any network call.

Every problem raises :class:`InputError` naming the input (and the item or CSV
line), so the step fails with exit code 2 and sends nothing.

>>> parse_duration("1h30m", "wait-timeout")
5400.0
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from action.runner import Runner
from smsrelay import ConfigError, ReplyWords, provider_names, read_recipients_csv

__all__ = ["INPUT_NAMES", "InputError", "Inputs", "RecipientInput", "parse_duration", "parse_inputs", "secret_values"]

WaitFor = Literal["none", "delivery", "reply"]

# Every input action.yml declares; tests check the two lists agree.
INPUT_NAMES = (
    "provider",
    "api-key",
    "api-secret",
    "api-url",
    "sid",
    "region",
    "default-region",
    "provider-options",
    "to",
    "to-file",
    "from",
    "message",
    "message-file",
    "template-vars",
    "message-ref",
    "track-links",
    "priority",
    "dry-run",
    "fail-on-error",
    "retries",
    "timeout",
    "wait-for",
    "wait-timeout",
    "poll-interval",
    "reply-from",
    "approve-pattern",
    "reject-pattern",
    "approval-code",
    "reveal-numbers",
    "message-ids",
    "routing-file",
)
# Names the template context already uses; a CSV column may not hide them.
RESERVED_VARS = ("github", "env", "vars", "row", "approval_code")
MAX_RETRIES = 10
_DURATION = re.compile(r"^(?:(?P<h>\d+(?:\.\d+)?)h)?(?:(?P<m>\d+(?:\.\d+)?)m)?(?:(?P<s>\d+(?:\.\d+)?)s?)?$")


class InputError(Exception):
    """An input is missing or invalid; ``input`` names it (or the step's ``env:`` variable,
    with ``kind="environment variable"``, for a setting only the environment gave)."""

    def __init__(self, input: str, message: str, *, kind: str = "input") -> None:
        self.input = input
        self.message = message
        self.kind = kind
        super().__init__(f"{self.label}: {message}")

    @property
    def label(self) -> str:
        """``Input 'from'``, or ``Environment variable 'SMSRELAY_…'``."""
        return f"{self.kind.capitalize()} '{self.input}'"


@dataclass(frozen=True)
class RecipientInput:
    """One recipient as given, with where it came from (for error messages)."""

    to: str
    origin: str
    vars: Mapping[str, str] = field(default_factory=dict)
    from_file: bool = False


@dataclass(frozen=True)
class Inputs:
    """Every input, parsed and checked; settings are validated later by the core."""

    provider: str
    settings: Mapping[str, Any]
    recipients: tuple[RecipientInput, ...]
    message: str
    message_input: str
    template_vars: Mapping[str, Any]
    sender: str | None
    message_ref: str | None
    track_links: bool
    priority: int | None
    dry_run: bool
    fail_on_error: bool
    wait_for: WaitFor
    wait_timeout: float
    poll_interval: float
    reply_from: tuple[str, ...]
    # The core's approval words, or approve-pattern / reject-pattern as regexes.
    words: ReplyWords
    # With wait-for: reply, offer a per-gate code ("Reply YES 4821"), so one reply decides one gate.
    approval_code: bool = False
    duplicates: tuple[str, ...] = ()
    reveal_numbers: bool = False
    # Ids an earlier step sent (its message-id or message-ids output), to follow instead of sending.
    follow_ids: tuple[str, ...] = ()
    # A routing file (accounts and routes) to send through instead of one provider.
    routing_file: Path | None = None


def parse_bool(runner: Runner, name: str, default: bool) -> bool:
    """A boolean input, as strict as ``core.getBooleanInput`` (YAML 1.2 core schema)."""
    value = runner.input(name)
    if value == "":
        return default
    if value in ("true", "True", "TRUE"):
        return True
    if value in ("false", "False", "FALSE"):
        return False
    raise InputError(name, f"must be true or false, got {value!r}")


def parse_duration(value: str, name: str) -> float:
    """Seconds from ``90``, ``90s``, ``10m``, ``1h`` or ``1h30m``.

    >>> parse_duration("90", "timeout"), parse_duration("2m", "timeout")
    (90.0, 120.0)
    """
    m = _DURATION.match(value.strip().lower())
    if not value.strip() or m is None or not any(m.groupdict().values()):
        raise InputError(name, f"must be a duration such as 30, 45s, 10m or 1h30m, got {value!r}")
    h, mi, s = (float(m.group(g) or 0) for g in ("h", "m", "s"))
    return h * 3600 + mi * 60 + s


def _number(runner: Runner, name: str, default: float, *, low: float, high: float, duration: bool = False) -> float:
    value = runner.input(name)
    if value == "":
        return default
    if duration:
        number = parse_duration(value, name)
    else:
        try:
            number = float(value)
        except ValueError:
            raise InputError(name, f"must be a number, got {value!r}") from None
    if not low <= number <= high:
        raise InputError(name, f"must be between {low:g} and {high:g}, got {value!r}")
    return number


def _json_object(runner: Runner, name: str) -> dict[str, Any]:
    value = runner.input(name)
    if value == "":
        return {}
    try:
        data = json.loads(value)
    except json.JSONDecodeError as exc:
        raise InputError(name, f"is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    if not isinstance(data, dict):
        raise InputError(name, f"must be a JSON object ({{...}}), got a {type(data).__name__}")
    return data


def _workspace_file(runner: Runner, name: str, value: str) -> Path:
    """A path as given, relative to ``GITHUB_WORKSPACE`` (where the checkout is)."""
    path = Path(value)
    if not path.is_absolute():
        path = Path(runner.env.get("GITHUB_WORKSPACE") or ".") / path
    if not path.is_file():
        raise InputError(name, f"file {value!r} does not exist (paths are relative to the workspace)")
    return path


def split_numbers(value: str) -> list[str]:
    """A comma- or newline-separated list, without blanks.

    >>> split_numbers("+61491570156, +61491570157\\n")
    ['+61491570156', '+61491570157']
    """
    return [part.strip() for part in re.split(r"[,\n;]", value) if part.strip()]


def read_csv(runner: Runner, value: str) -> list[RecipientInput]:
    """Recipients from ``to-file``: the core's CSV reader, told as the ``to-file`` input."""
    try:
        rows = read_recipients_csv(_workspace_file(runner, "to-file", value), reserved=RESERVED_VARS)
    except ConfigError as exc:
        where = f" line {exc.line}" if exc.line else ""
        raise InputError("to-file", f"{value!r}{where}: {exc.detail}") from None
    if not rows:
        raise InputError("to-file", f"{value!r} lists no recipients")
    return [
        RecipientInput(row.recipient.to, f"to-file line {row.line}", dict(row.recipient.vars), from_file=True)
        for row in rows
    ]


def secret_values(runner: Runner) -> list[str]:
    """Everything to mask before the first line is printed: credentials and numbers.

    Reads only; a bad input here is reported later, after the masks.
    """
    values = [runner.raw_input("api-key"), runner.raw_input("api-secret")]
    values += split_numbers(runner.input("to")) + split_numbers(runner.input("reply-from"))
    # An id given in full (from reveal-numbers: true) holds a number after its ":".
    values += re.findall(r"(?<=:)\+?\d{8,15}(?!\d)", runner.input("message-ids"))
    file_value = runner.input("to-file")
    if file_value:
        with contextlib.suppress(InputError):
            values += [r.to for r in read_csv(runner, file_value)]
    try:
        options = _json_object(runner, "provider-options")
    except InputError:
        options = {}
    values += [str(v) for k, v in options.items() if re.search(r"key|secret|token|password", k, re.I)]
    return [v for v in values if v]


def _message(runner: Runner) -> tuple[str, str]:
    text, file_value = runner.raw_input("message"), runner.input("message-file")
    if text.strip() and file_value:
        raise InputError("message", "give either message or message-file, not both")
    if file_value:
        path = _workspace_file(runner, "message-file", file_value)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError("message-file", f"cannot read {file_value!r} as UTF-8 text: {exc}") from None
        if "${{" in text:
            # The runner evaluates ${{ }} only in `with:` values, never inside files.
            raise InputError(
                "message-file",
                f"{file_value!r} contains '${{{{': workflow expressions are not evaluated in files; "
                "write {{ github.sha }} (no $) to use the action's own template variables",
            )
        text, name = text.rstrip("\n"), "message-file"
    else:
        name = "message"
    if not text.strip():
        raise InputError("message", "is required (or message-file): the text to send")
    return text, name


def _words(runner: Runner) -> ReplyWords:
    """The core's default words, or the patterns given (case-insensitive regexes, searched)."""
    patterns: list[re.Pattern[str] | None] = [None, None]
    for i, name in enumerate(("approve-pattern", "reject-pattern")):
        value = runner.input(name)
        if not value:
            continue
        try:
            patterns[i] = re.compile(value, re.IGNORECASE)
        except re.error as exc:
            raise InputError(name, f"is not a valid regular expression: {exc}") from None
    default = ReplyWords()
    return ReplyWords(patterns[0] or default.approve, patterns[1] or default.reject)


def _settings(runner: Runner, provider: str) -> dict[str, Any]:
    """Overrides for the core's settings; the core validates names and types."""
    data: dict[str, Any] = dict(_json_object(runner, "provider-options"))
    for name, key in (
        ("api-key", "api_key"),
        ("api-secret", "api_secret"),
        ("api-url", "base_url"),
        ("from", "sender"),
        ("default-region", "default_region"),
        ("sid", "sid"),
        ("region", "region"),
    ):
        value = runner.input(name)
        if value:
            data[key] = value
    url = data.get("base_url")
    if url is not None and not re.match(r"^https?://[^\s/]+", str(url)):
        raise InputError("api-url", "must be an http:// or https:// URL")
    data["retries"] = int(_number(runner, "retries", 3, low=0, high=MAX_RETRIES))
    data["timeout"] = _number(runner, "timeout", 30, low=1, high=600, duration=True)
    return data


def message_ids(runner: Runner) -> tuple[str, ...]:
    """``message-ids``: a JSON array (an earlier ``message-ids`` output) or a comma/newline list.

    >>> message_ids(Runner({"INPUT_MESSAGE-IDS": '["a:masked-1", "b"]'}))
    ('a:masked-1', 'b')
    """
    value = runner.input("message-ids")
    if not value:
        return ()
    if value.startswith("["):
        try:
            data = json.loads(value)
        except json.JSONDecodeError as exc:
            raise InputError("message-ids", f"is not a valid JSON array: {exc.msg} at column {exc.colno}") from None
        if not isinstance(data, list) or not all(isinstance(i, str) and i.strip() for i in data):
            raise InputError("message-ids", "must be a JSON array of id strings, or ids separated by commas")
        return tuple(i.strip() for i in data)
    return tuple(part.strip() for part in re.split(r"[,\n]", value) if part.strip())


def _follow_only(runner: Runner) -> None:
    """With ``message-ids`` the step follows earlier messages: it sends nothing."""
    for name in ("to", "to-file", "message", "message-file", "reply-from"):
        if runner.input(name):
            raise InputError("message-ids", f"follows messages an earlier step sent, so it cannot be given with {name}")
    if parse_bool(runner, "dry-run", False):
        raise InputError("dry-run", "does not apply with message-ids: following messages sends nothing")
    if (runner.input("wait-for").lower() or "none") != "delivery":
        raise InputError("wait-for", "must be delivery with message-ids: the step waits for their delivery reports")


def _routing_file(runner: Runner) -> Path | None:
    """``routing-file``: the accounts and routes to send through, instead of ``provider``."""
    value = runner.input("routing-file")
    if not value:
        return None
    # Each account's settings are in the file; an input beside it would be silently ignored.
    for name in ("provider", "api-key", "api-secret", "api-url", "sid", "region", "default-region", "provider-options"):
        if runner.input(name):
            raise InputError("routing-file", f"names the accounts' settings, so it cannot be given with {name}")
    if runner.input("message-ids"):
        raise InputError("routing-file", "sends; following an earlier step's message-ids takes one provider")
    if (runner.input("wait-for").lower() or "none") != "none":
        raise InputError("wait-for", "must be none with routing-file: waits follow one provider's messages")
    return _workspace_file(runner, "routing-file", value)


def parse_inputs(runner: Runner) -> Inputs:
    """Read and check every input; raise :class:`InputError` at the first problem."""
    routing = _routing_file(runner)
    provider = runner.input("provider").lower()
    # With a routing file, each of its accounts names its own provider.
    if routing is None and not provider:
        raise InputError("provider", f"is required (or routing-file): one of {', '.join(provider_names())}")
    if routing is None and provider not in provider_names():
        raise InputError("provider", f"must be one of {', '.join(provider_names())}, got {provider!r}")
    settings = _settings(runner, provider)
    follow = message_ids(runner)
    if follow:
        _follow_only(runner)
    recipients: list[RecipientInput] = []
    seen: set[str] = set()
    duplicates: list[str] = []
    for i, number in enumerate(split_numbers(runner.input("to")), 1):
        if number in seen:
            duplicates.append(f"to item {i}")
            continue
        seen.add(number)
        recipients.append(RecipientInput(number, f"to item {i}"))
    if runner.input("to-file"):
        recipients += read_csv(runner, runner.input("to-file"))
    if not recipients and not follow:
        raise InputError("to", "is required (or to-file): one or more phone numbers, comma- or newline-separated")
    message, message_input = ("", "message") if follow else _message(runner)
    wait_for = runner.input("wait-for").lower() or "none"
    if wait_for not in ("none", "delivery", "reply"):
        raise InputError("wait-for", f"must be none, delivery or reply, got {wait_for!r}")
    priority_text = runner.input("priority")
    priority: int | None = None
    if priority_text:
        try:
            priority = int(priority_text)
        except ValueError:
            raise InputError("priority", f"must be a whole number, got {priority_text!r}") from None
    reply_from = tuple(split_numbers(runner.input("reply-from")))
    if reply_from and wait_for != "reply":
        raise InputError("reply-from", "only applies with wait-for: reply")
    approval_code = parse_bool(runner, "approval-code", False)
    if approval_code and wait_for != "reply":
        raise InputError("approval-code", "only applies with wait-for: reply")
    return Inputs(
        provider=provider,
        settings=settings,
        recipients=tuple(recipients),
        message=message,
        message_input=message_input,
        template_vars=_json_object(runner, "template-vars"),
        sender=runner.input("from") or None,
        message_ref=runner.input("message-ref") or None,
        track_links=parse_bool(runner, "track-links", False),
        priority=priority,
        dry_run=parse_bool(runner, "dry-run", False),
        fail_on_error=parse_bool(runner, "fail-on-error", True),
        wait_for=wait_for,  # type: ignore[arg-type]
        wait_timeout=_number(runner, "wait-timeout", 600, low=0, high=6 * 3600, duration=True),
        poll_interval=_number(runner, "poll-interval", 5, low=0.01, high=600, duration=True),
        reply_from=reply_from,
        words=_words(runner),
        approval_code=approval_code,
        duplicates=tuple(duplicates),
        reveal_numbers=parse_bool(runner, "reveal-numbers", False),
        follow_ids=follow,
        routing_file=routing,
    )
