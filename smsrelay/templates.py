"""Message templates: jinja2 with ``StrictUndefined``, so a missing variable is an error.

>>> render("Hi {{ name }}", {"name": "Ann"})
'Hi Ann'
"""

from __future__ import annotations

import functools
import keyword
import re
from collections.abc import Mapping
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from smsrelay.errors import TemplateError

__all__ = ["compile_template", "render"]


@functools.lru_cache(maxsize=1)
def _env() -> SandboxedEnvironment:
    # Sandboxed: templates may come from Salesforce records or workflow inputs.
    return SandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=False)


@functools.lru_cache(maxsize=256)
def compile_template(source: str) -> jinja2.Template:
    """Parse ``source`` once; raise ``TemplateError`` with the line on bad syntax.

    >>> compile_template("{{ a }}").render(a=1)
    '1'
    """
    try:
        return _env().from_string(source)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(
            f"the message template has a syntax error on line {exc.lineno}: {exc.message}",
            field="message",
        ) from None


# A template made only of text and ``{{ name }}`` holes renders as a join: jinja's
# per-render context costs more than the message it renders, once per recipient.
_HOLE = re.compile(r"\{\{ ?([A-Za-z_][A-Za-z0-9_]*) ?\}\}")
_LITERAL_NAMES = frozenset(
    {"true", "false", "none", "True", "False", "None", "self", "loop", "varargs", "kwargs", "caller", "super"}
)


@functools.lru_cache(maxsize=256)
def _plain(source: str) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
    """The text parts and names of a template jinja would render as plain substitution, else None."""
    if "\r" in source or source.endswith("\n"):
        return None  # jinja normalises newlines and drops a trailing one
    parts = _HOLE.split(source)
    texts, names = tuple(parts[0::2]), tuple(parts[1::2])
    if any("{" in t for t in texts):
        return None
    reserved = _env().globals
    if any(keyword.iskeyword(n) or n in _LITERAL_NAMES or n in reserved for n in names):
        return None
    return texts, names


def _substitute(plain: tuple[tuple[str, ...], tuple[str, ...]], variables: Mapping[str, Any]) -> str:
    texts, names = plain
    out = [texts[0]]
    for name, text in zip(names, texts[1:], strict=True):
        if name not in variables:
            raise jinja2.UndefinedError(f"{name!r} is undefined")
        out.append(str(variables[name]))
        out.append(text)
    return "".join(out)


def render(source: str, variables: Mapping[str, Any], *, recipient: str | None = None) -> str:
    """Render ``source`` with ``variables``; a missing one raises ``TemplateError``.

    The error names the variable and the recipient, e.g.
    ``'first_name' is undefined for recipient +61491570156``.

    >>> render("{{ 'x' }}", {})
    'x'
    """
    if "{" not in source:
        return source
    template = compile_template(source)
    plain = _plain(source)
    try:
        if plain is not None:
            return _substitute(plain, variables)
        if "self" in variables and _refers_to_self(source):
            raise TemplateError(
                f"template variable 'self'{_for(recipient)} is jinja's name for the template: rename the variable",
                field="message",
                recipient=recipient,
            )
        # The variables as one mapping: as keywords, one named "self" would clash with render()'s own.
        return template.render(variables)
    except jinja2.UndefinedError as exc:
        raise TemplateError(
            f"template variable missing: {exc.message}{_for(recipient)}",
            field="message",
            recipient=recipient,
        ) from None
    except jinja2.TemplateError as exc:
        raise TemplateError(
            f"the message template failed{_for(recipient)}: {exc}", field="message", recipient=recipient
        ) from None


def _for(recipient: str | None) -> str:
    """The error message's ``for recipient +61…`` suffix, or nothing without a recipient."""
    return f" for recipient {recipient}" if recipient else ""


@functools.lru_cache(maxsize=64)
def _refers_to_self(source: str) -> bool:
    """True when the template uses the name ``self``, which jinja binds to the template."""
    return any(node.name == "self" for node in _env().parse(source).find_all(jinja2.nodes.Name))
