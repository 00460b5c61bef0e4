"""The runner's side of the contract: ``INPUT_*`` in, workflow commands and files out.

Modelled on ``@actions/core`` (``packages/core/src/{command,file-command}.ts``):
``::cmd::`` lines on stdout with percent-escaped data, and ``GITHUB_OUTPUT`` /
``GITHUB_STEP_SUMMARY`` files appended with random-delimiter heredocs.

>>> escape_data("50%\\ndone")
'50%25%0Adone'
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import TextIO

__all__ = ["Runner", "escape_data", "escape_property", "input_env_name"]


def input_env_name(name: str) -> str:
    """The variable the runner sets for an input: spaces become ``_``, hyphens stay.

    >>> input_env_name("api-key")
    'INPUT_API-KEY'
    """
    # actions/runner Handler.cs: "INPUT_" + name.Replace(' ', '_').ToUpperInvariant()
    return "INPUT_" + name.replace(" ", "_").upper()


def escape_data(value: str) -> str:
    """Escape a command's message (``toCommandValue`` + ``escapeData`` in @actions/core)."""
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(value: str) -> str:
    """Escape a command property such as ``title`` (``escapeProperty`` in @actions/core)."""
    return escape_data(value).replace(":", "%3A").replace(",", "%2C")


class Runner:
    """Reads inputs from, and writes commands and files to, the GitHub runner.

    ``env`` defaults to ``os.environ`` and ``out`` to stdout; every command is
    flushed at once so it lands in order with anything the step prints.
    """

    def __init__(self, env: Mapping[str, str] | None = None, out: TextIO | None = None) -> None:
        self.env = os.environ if env is None else env
        self.out = out or sys.stdout
        self._masked: set[str] = set()

    # -- inputs ---------------------------------------------------------------
    def input(self, name: str) -> str:
        """The raw input, stripped; ``""`` when unset (the runner sets every declared input)."""
        return self.env.get(input_env_name(name), "").strip()

    def raw_input(self, name: str) -> str:
        """The input exactly as given (a message keeps its inner whitespace)."""
        return self.env.get(input_env_name(name), "")

    # -- commands -------------------------------------------------------------
    def command(self, name: str, message: str, **props: str | int | None) -> None:
        shown = ",".join(f"{k}={escape_property(str(v))}" for k, v in props.items() if v not in (None, ""))
        self.out.write(f"::{name}{' ' + shown if shown else ''}::{escape_data(message)}\n")
        self.out.flush()

    def mask(self, value: str | None) -> None:
        """``::add-mask::`` a secret, each line on its own (the runner masks line by line)."""
        if not value:
            return
        for line in value.splitlines() or [value]:
            line = line.strip()
            # A one- or two-character mask would star out half the log.
            if len(line) >= 3 and line not in self._masked:
                self._masked.add(line)
                self.command("add-mask", line)

    def error(self, message: str, *, title: str | None = None) -> None:
        self.command("error", message, title=title)

    def warning(self, message: str, *, title: str | None = None) -> None:
        self.command("warning", message, title=title)

    def notice(self, message: str, *, title: str | None = None) -> None:
        self.command("notice", message, title=title)

    def debug(self, message: str) -> None:
        self.command("debug", message)

    def info(self, message: str = "") -> None:
        self.out.write(message + "\n")
        self.out.flush()

    def group(self, title: str) -> None:
        self.out.write(f"::group::{escape_data(title)}\n")
        self.out.flush()

    def endgroup(self) -> None:
        self.out.write("::endgroup::\n")
        self.out.flush()

    # -- files ----------------------------------------------------------------
    def set_outputs(self, outputs: Mapping[str, str]) -> None:
        """Append outputs to ``GITHUB_OUTPUT`` as heredocs with a random delimiter.

        Values are written verbatim: no percent-escaping, so JSON and newlines survive.
        """
        path = self.env.get("GITHUB_OUTPUT")
        if not path:
            # ASSUMPTION: outside a runner (local runs), print them so nothing is lost.
            for name, value in outputs.items():
                self.info(f"output {name}={value}")
            return
        chunks = []
        for name, value in outputs.items():
            delimiter = f"ghadelimiter_{uuid.uuid4()}"
            # file-command.ts refuses a value or name that contains its delimiter.
            if delimiter in name or delimiter in value:
                raise ValueError(f"output {name!r} contains its own delimiter")
            chunks.append(f"{name}<<{delimiter}\n{value}\n{delimiter}\n")
        with Path(path).open("a", encoding="utf-8") as f:
            f.write("".join(chunks))

    def add_summary(self, markdown: str) -> None:
        """Append Markdown to the job summary (``GITHUB_STEP_SUMMARY``), if the runner gave one."""
        path = self.env.get("GITHUB_STEP_SUMMARY")
        if not path:
            return
        with Path(path).open("a", encoding="utf-8") as f:
            f.write(markdown if markdown.endswith("\n") else markdown + "\n")
