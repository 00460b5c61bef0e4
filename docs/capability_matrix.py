"""The provider capability matrix, generated from each adapter's ``Capabilities``.

Used as an mkdocs hook: the marker ``<!-- capability-matrix -->`` in a page is
replaced by the table, so the docs can never disagree with the code.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

MARKER = "<!-- capability-matrix -->"

# Each row of the matrix; Kudosity appears once per API version.
ROWS: list[tuple[str, str, dict[str, Any]]] = [
    ("Kudosity V2", "kudosity", {"api": "v2", "api_key": "k"}),
    ("Kudosity V1", "kudosity", {"api": "v1", "api_key": "k", "api_secret": "s"}),
    ("SMSKit", "smskit", {"api_key": "k"}),
    ("ME-SMS", "mesms", {"api_key": "k"}),
    ("Kaleyra", "kaleyra", {"api_key": "k", "sid": "HXAP0000000000"}),
    ("Sandbox", "sandbox", {}),
]


def matrix_markdown() -> str:
    """The capability table as Markdown, one column per provider."""
    from smsrelay.config import settings_from_mapping
    from smsrelay.model import Capabilities
    from smsrelay.providers import provider_class

    columns = []
    tmp = tempfile.mkdtemp(prefix="smsrelay-docs-")
    for title, name, opts in ROWS:
        try:
            if name == "sandbox":
                opts = {"path": os.path.join(tmp, "sandbox.db")}
            settings = settings_from_mapping({"provider": name, **opts}, name, env={})
            provider = provider_class(name)(settings)
            columns.append((title, provider.capabilities))
            provider.close()
        except Exception as exc:  # a provider not built yet shows as such, not as a broken site
            columns.append((f"{title} (unavailable: {type(exc).__name__})", Capabilities()))
    flags = list(Capabilities.__dataclass_fields__)
    lines = ["| capability | " + " | ".join(t for t, _ in columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for flag in flags:
        cells = []
        for _, caps in columns:
            value = getattr(caps, flag)
            cells.append(_cell(value))
        lines.append(f"| `{flag}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None:  # e.g. countries: any, sender_max_chars: no limit
        return "any"
    if isinstance(value, frozenset):
        return ", ".join(sorted(value))
    return f"{value:,}"


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    """mkdocs hook: fill in the matrix where a page asks for it."""
    if MARKER in markdown:
        return markdown.replace(MARKER, matrix_markdown())
    return markdown


if __name__ == "__main__":
    print(matrix_markdown())
