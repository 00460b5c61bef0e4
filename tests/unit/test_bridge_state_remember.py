"""The state file keeps a write-back's messages only once the write-back says which records were written."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from smsrelay_salesforce.state import Applied, State


def _row(i: int) -> Applied:
    return Applied(f"m{i}", f"a00{i}", f"k{i}", "+61491570156", "Acme", "Sent", datetime(2026, 1, 1, tzinfo=UTC))


def test_staged_rows_are_kept_only_as_settle_says(tmp_path: Path) -> None:
    state = State(tmp_path / "state.db")
    a, b, c = _row(1), _row(2), _row(3)
    state.remember_after([a, b], lambda: [a, b])  # all written: committed as staged
    assert set(state.applied(["m1", "m2"])) == {"m1", "m2"}
    state.remember_after([c], lambda: [])  # its record's write-back failed: not kept
    assert state.applied(["m3"]) == {}

    def fails() -> list[Applied]:
        raise RuntimeError("the write-back call failed")

    with pytest.raises(RuntimeError):
        state.remember_after([c], fails)
    assert state.applied(["m3"]) == {}
    state.remember(_row(4) for _ in range(1))  # the connection is usable after a rollback
    assert set(state.applied(["m1", "m2", "m3", "m4"])) == {"m1", "m2", "m4"}
    state.close()
