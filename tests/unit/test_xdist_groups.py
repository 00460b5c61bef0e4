"""The suite relies on ``--dist loadgroup`` keeping an ``xdist_group`` on one worker (one Airflow
stack, one npm install, one wheel build per group). pytest 9.2 with pytest-xdist 3.8 silently
stopped tagging node ids, so every group split across workers; this fails if that comes back."""

from __future__ import annotations

import pytest


@pytest.mark.xdist_group("canary")
def test_loadgroup_tags_the_node_with_its_group(request: pytest.FixtureRequest) -> None:
    # A worker sees dist="no"; the controller's command line is in workerinput.
    argv = getattr(request.config, "workerinput", {}).get("mainargv", [])
    if "loadgroup" not in argv and "--dist=loadgroup" not in argv:
        pytest.skip("runs only under pytest -n N --dist loadgroup (make test)")
    assert request.node.nodeid.endswith("@canary")
