"""The committed locks agree with the pyprojects: every requirement is locked, at a version its
range allows, with hashes, so `make` installs exactly what was resolved (and `make lock` is
the only way to move a pin)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
OURS = {"smsrelay", "smsrelay-airflow", "smsrelay-salesforce"}


def locked(name: str) -> dict[str, str]:
    """name -> version for one lock file; each pin must carry at least one hash."""
    text = (ROOT / "locks" / f"{name}.txt").read_text()
    pins = dict(re.findall(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+) \\\n\s+--hash=sha256:", text, re.M))
    assert pins, f"locks/{name}.txt has no hashed pins"
    assert "-e " not in text, "editable lines break pip's --require-hashes"
    return {canonicalize_name(k): v for k, v in pins.items()}


def requirements(pyproject: str, extras: tuple[str, ...]) -> list[Requirement]:
    project = tomllib.loads((ROOT / pyproject).read_text())["project"]
    reqs = list(project.get("dependencies", []))
    for extra in extras:
        reqs += project["optional-dependencies"][extra]
    return [Requirement(r) for r in reqs]


# Each lock and what locks/*.in (or the pyproject) feeds into it.
CASES = {
    "main": [
        ("pyproject.toml", ("server", "dev")),
        ("airflow_provider/pyproject.toml", ("airflow",)),
        ("salesforce_bridge/pyproject.toml", ("emulator",)),
    ],
    "airflow2": [("pyproject.toml", ()), ("airflow_provider/pyproject.toml", ("airflow2",))],
    "action": [("pyproject.toml", ())],
}


@pytest.mark.parametrize("lock", sorted(CASES))
def test_every_requirement_is_locked_within_its_range(lock: str) -> None:
    pins = locked(lock)
    wrong = []
    for pyproject, extras in CASES[lock]:
        for req in requirements(pyproject, extras):
            name = canonicalize_name(req.name)
            if name in OURS or (req.marker and not req.marker.evaluate({"python_version": "3.11"})):
                continue
            if name not in pins:
                wrong.append(f"{pyproject}: {req} is not in locks/{lock}.txt")
            elif not req.specifier.contains(pins[name], prereleases=True):
                wrong.append(f"{pyproject}: {req} but locks/{lock}.txt has {pins[name]}")
    assert not wrong, "run make lock:\n" + "\n".join(wrong)


def test_the_inputs_name_every_distribution_with_its_extras() -> None:
    main_in = (ROOT / "locks" / "main.in").read_text()
    assert "-e .[server,dev]" in main_in
    assert "-e ./airflow_provider[airflow]" in main_in
    assert "-e ./salesforce_bridge[emulator]" in main_in
    assert "-e ./airflow_provider[airflow2]" in (ROOT / "locks" / "airflow2.in").read_text()


def test_held_back_cryptography_is_locked_below_51() -> None:
    # Airflow 2.11.2's get_fernet() cannot set attributes on cryptography 51's Rust MultiFernet.
    for lock in ("main", "airflow2"):
        assert int(locked(lock)["cryptography"].split(".")[0]) < 51


@pytest.mark.parametrize(
    "pyproject", ["pyproject.toml", "airflow_provider/pyproject.toml", "salesforce_bridge/pyproject.toml"]
)
def test_the_build_lock_satisfies_every_build_backend(pyproject: str) -> None:
    # The image and release.yml build with locks/build.txt and no build isolation.
    pins = locked("build")
    for raw in tomllib.loads((ROOT / pyproject).read_text())["build-system"]["requires"]:
        req = Requirement(raw)
        assert req.specifier.contains(pins[canonicalize_name(req.name)]), f"{pyproject}: {req}"


def test_airflow_constraints_apply_less_our_own_pins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # make lock reads Airflow's constraints file (a URL or a path); the pins our pyprojects
    # make themselves (pytest, mypy, …: Airflow's file pins dev tools too) are dropped from it.
    import sys

    sys.path.insert(0, str(ROOT / "locks"))
    try:
        import lock
    finally:
        sys.path.remove(str(ROOT / "locks"))
    theirs = tmp_path / "constraints-3.11.txt"
    theirs.write_text("# generated\nPyYAML==6.0.2\nmypy==1.9.0\npytest==8.3.5\nSQLAlchemy==1.4.54\nrich==13.9.4\n")
    monkeypatch.setenv("AIRFLOW_CONSTRAINTS", str(theirs))
    path = lock.airflow_constraints("AIRFLOW_CONSTRAINTS", tmp_path)
    assert path is not None
    assert path.read_text().split() == ["SQLAlchemy==1.4.54", "rich==13.9.4"]
    monkeypatch.setenv("AIRFLOW_CONSTRAINTS", "")
    assert lock.airflow_constraints("AIRFLOW_CONSTRAINTS", tmp_path) is None
