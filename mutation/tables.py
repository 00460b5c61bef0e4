"""Mutants of the module-level tables, which mutmut never changes (it mutates function bodies).

A table is a dict or tuple literal at module level: ``lifecycle.PROGRESS``, the adapters' status
maps. Each mutant changes one entry, in a forked child of this process, and then runs the unit
tests that exercise the table. A mutant is killed when a test fails.

- an ``int`` value: ``+1`` and ``-1``
- an enum value (a ``Status``): the entry ``drop``-ped, and ``->`` the table's next other value
- a ``str`` value: ``drop``-ped, and wrapped in ``XX``
- a tuple item: ``drop``-ped

Dicts are changed in place, so every holder of the table sees the change, as it would if the
literal in the source had changed; top-level assignments that derive from a table
(``_NAMED = re.compile(... SECRET_NAMES ...)``) are run again after it changes.
"""

from __future__ import annotations

import ast
import enum
import importlib
import importlib.metadata
import inspect
import os
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

# module: (its tables, the unit tests that exercise them)
TABLES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "smsrelay.lifecycle": (("PROGRESS",), ("tests/unit/test_lifecycle.py",)),
    "smsrelay.segments": (("SINGLE", "MULTI"), ("tests/unit/test_segments.py",)),
    "smsrelay.redaction": (("SECRET_NAMES",), ("tests/unit/test_redaction.py",)),
    "smsrelay.providers.kaleyra": (("STATUS", "TRACE_STATUS"), ("tests/unit/test_status_tables.py",)),
    "smsrelay.providers.kudosity.tables": (("V2_STATUS", "V1_STATUS"), ("tests/unit/test_status_tables.py",)),
    "smsrelay.providers.mesms": (("STATUS", "REASONS", "MESSAGE_STATUS"), ("tests/unit/test_status_tables.py",)),
    "smsrelay.providers.smskit": (("STATUS", "EVENT_STATUS"), ("tests/unit/test_status_tables.py",)),
}
PYTEST_ARGS = ("-x", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", "-p", "no:randomly")
TIMEOUT = 120.0  # seconds; a mutant that makes the tests hang is killed
_DROP = object()


@dataclass(frozen=True)
class TableMutant:
    module: str
    table: str
    key: Any  # a dict key, or a tuple index
    change: str
    value: Any = _DROP  # the entry's new value; _DROP removes it

    @property
    def name(self) -> str:
        key = f"{type(self.key).__name__}.{self.key.name}" if isinstance(self.key, enum.Enum) else repr(self.key)
        return f"{self.module}.{self.table}[{key}] {self.change}"


def mutants(module: str, table: str) -> Iterator[TableMutant]:
    data = getattr(importlib.import_module(module), table)
    if isinstance(data, tuple):
        for i, item in enumerate(data):
            yield TableMutant(module, table, i, f"drop {item!r}")
        return
    others = list(dict.fromkeys(data.values()))
    for key, value in data.items():
        if isinstance(value, bool):
            raise TypeError(f"{module}.{table}[{key!r}]: no mutants for a bool")
        if isinstance(value, int) and not isinstance(value, enum.Enum):
            yield TableMutant(module, table, key, "+1", value + 1)
            yield TableMutant(module, table, key, "-1", value - 1)
            continue
        yield TableMutant(module, table, key, "drop")
        if isinstance(value, enum.Enum) and len(others) > 1:
            other = others[(others.index(value) + 1) % len(others)]
            yield TableMutant(module, table, key, f"-> {other.name}", other)
        elif isinstance(value, str):
            yield TableMutant(module, table, key, "XX", f"XX{value}XX")


def _apply(m: TableMutant) -> None:
    mod = importlib.import_module(m.module)
    data = getattr(mod, m.table)
    if isinstance(data, tuple):
        setattr(mod, m.table, data[: m.key] + data[m.key + 1 :])
    elif m.value is _DROP:
        del data[m.key]
    else:
        data[m.key] = m.value
    # Re-run what the module derived from the table at import time.
    for stmt in ast.parse(inspect.getsource(mod)).body:
        if isinstance(stmt, ast.Assign | ast.AnnAssign) and stmt.value is not None:
            names = {n.id for n in ast.walk(stmt.value) if isinstance(n, ast.Name)}
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            if m.table in names and not any(isinstance(t, ast.Name) and t.id == m.table for t in targets):
                exec(compile(ast.Module([stmt], []), mod.__file__ or m.module, "exec"), mod.__dict__)  # noqa: S102


def _child(m: TableMutant | None, tests: tuple[str, ...]) -> int:
    """Fork a child that applies ``m`` (None: nothing) and runs ``tests``; return its pid."""
    pid = os.fork()
    if pid:
        return pid
    code = 3
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        import pytest

        if m is not None:
            _apply(m)
        code = int(pytest.main([*tests, *PYTEST_ARGS]))
    finally:
        os._exit(code)


def _preload() -> None:
    """Import pytest's plugins and the test fixtures once, so that each child forks with them loaded.

    The test modules themselves are imported in each child, after its change.
    """
    import pytest  # noqa: F401

    for entry in importlib.metadata.entry_points(group="pytest11"):
        entry.load()
    importlib.import_module("tests.conftest")
    for path in sorted((ROOT / "tests" / "fixtures").glob("*.py")):
        if path.stem != "__init__":
            importlib.import_module(f"tests.fixtures.{path.stem}")


def run(max_children: int) -> dict[str, bool]:
    """Every table mutant's name, and whether a test killed it."""
    os.chdir(ROOT)
    sys.path.insert(0, str(ROOT))
    _preload()
    jobs: list[tuple[TableMutant | None, tuple[str, ...]]] = []
    for module, (tables, tests) in TABLES.items():
        jobs.append((None, tests))  # the clean run: the tests must pass unchanged
        jobs.extend((m, tests) for table in tables for m in mutants(module, table))
    killed: dict[str, bool] = {}
    running: dict[int, tuple[TableMutant | None, tuple[str, ...], float]] = {}
    pending = list(reversed(jobs))
    while pending or running:
        while pending and len(running) < max_children:
            m, tests = pending.pop()
            running[_child(m, tests)] = (m, tests, time.monotonic())
        pid, status = os.waitpid(-1, os.WNOHANG)
        if pid == 0:
            for child, (_, _, started) in running.items():
                if time.monotonic() - started > TIMEOUT:
                    os.kill(child, signal.SIGKILL)
            time.sleep(0.05)
            continue
        m, tests, _ = running.pop(pid)
        code = os.waitstatus_to_exitcode(status)
        problem = None
        if m is None:
            if code != 0:
                problem = f"the unchanged tables fail their tests (pytest exit {code}): {' '.join(tests)}"
        elif code in (0, 1, -signal.SIGKILL):
            killed[m.name] = code != 0
        else:
            problem = f"{m.name}: pytest exit {code}; run the tests by hand with this change to see why"
        if problem:
            for child in running:
                os.kill(child, signal.SIGKILL)
                os.waitpid(child, 0)
            sys.exit(problem)
    return killed


def module_of(name: str) -> str:
    """The module a table mutant's name belongs to, e.g. ``smsrelay.lifecycle``."""
    return name.split("[", 1)[0].rpartition(".")[0]
