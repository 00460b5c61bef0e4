"""Message templates: jinja2 with ``StrictUndefined``, so a missing variable is an error.

>>> render("Hi {{ name }}", {"name": "Ann"})
'Hi Ann'
"""

from __future__ import annotations

import functools
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
    try:
        return template.render(**variables)
    except jinja2.UndefinedError as exc:
        who = f" for recipient {recipient}" if recipient else ""
        raise TemplateError(
            f"template variable missing: {exc.message}{who}",
            field="message",
            recipient=recipient,
        ) from None
    except jinja2.TemplateError as exc:
        who = f" for recipient {recipient}" if recipient else ""
        raise TemplateError(f"the message template failed{who}: {exc}", field="message", recipient=recipient) from None
