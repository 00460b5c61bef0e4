"""A DAG file that imports the provider's operators, sensors and notifier loads no core client,
HTTP stack or phone metadata: the scheduler parses it again and again (bench_dag_parse times it)."""

from __future__ import annotations

import pytest

pytest.importorskip("airflow")
pytestmark = pytest.mark.airflow

from bench.bench_dag_parse import MODULES, sample  # noqa: E402


def test_parsing_a_dag_file_loads_no_client_module() -> None:
    assert sample(MODULES)["heavy"] == []
