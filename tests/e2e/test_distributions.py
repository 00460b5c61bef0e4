"""The three distributions as users install them: built wheels, not the editable checkout.

An editable install reads modules and data straight from the source tree, so it hides
packaging mistakes (a package not listed, data left out of ``package-data``, an entry
point that names the wrong module) that every ``pip install smsrelay-airflow`` would hit.

Once per test session: copy each project's files as a fresh clone has them (git's tracked
and unignored files, so no stale ``build/`` leaks in), ``python -m build --wheel
--no-isolation`` each (as release.yml builds them), ``twine check`` the wheels, and install
them with ``--no-deps`` into a fresh venv whose dependencies come from ``locks/main.txt``
(``--require-hashes --no-deps``). uv installs the lock: the same hashed files as pip,
in seconds from its cache.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROJECTS = {"smsrelay": ".", "smsrelay_airflow": "airflow_provider", "smsrelay_salesforce": "salesforce_bridge"}
UV = Path(sys.executable).with_name("uv")

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("distributions")]


def run(*argv: str | Path, **kw: object) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([str(a) for a in argv], capture_output=True, text=True, **kw)  # type: ignore[call-overload]
    assert done.returncode == 0, f"{argv}\n{done.stdout}\n{done.stderr}"
    return done


def clone_files(project: str, dest: Path) -> Path:
    """The project's files as a fresh clone (plus uncommitted work) has them."""
    listed = run("git", "ls-files", "--cached", "--others", "--exclude-standard", "-z", project, cwd=ROOT).stdout
    for rel in filter(None, listed.split("\0")):
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest / project


@pytest.fixture(scope="session")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    work = tmp_path_factory.mktemp("distributions")
    dist = work / "dist"
    built = {}
    for name, project in PROJECTS.items():
        source = clone_files(project, work / "clone")
        run(sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", dist, source)
        (built[name],) = dist.glob(f"{name}-*.whl")
    return built


@pytest.fixture(scope="session")
def venv(wheels: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv: the locked dependencies, then the three wheels with ``--no-deps``."""
    target = tmp_path_factory.mktemp("venv") / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", target)
    python = target / "bin" / "python"
    run(UV, "pip", "install", "--python", python, "--require-hashes", "--no-deps", "-r", ROOT / "locks" / "main.txt")
    run(UV, "pip", "install", "--python", python, "--no-deps", *wheels.values())
    return target


def test_twine_accepts_the_wheels(wheels):
    # --strict: a missing or unrenderable readme (an empty PyPI page) fails too.
    done = run(sys.executable, "-m", "twine", "check", "--strict", *wheels.values())
    assert done.stdout.count("PASSED") == 3


def test_the_wheels_hold_their_packages_and_data(wheels):
    def names(name: str) -> set[str]:
        with zipfile.ZipFile(wheels[name]) as z:
            return set(z.namelist())

    assert "smsrelay/py.typed" in names("smsrelay")
    assert any(n.startswith("smsrelay/providers/") for n in names("smsrelay"))
    assert any(n.endswith(".object-meta.xml") for n in names("smsrelay_salesforce"))
    assert not any(n.startswith(("tests/", "smsrelay/")) for n in names("smsrelay_airflow"))


def test_the_clis_run_from_the_wheels(venv):
    bin_ = venv / "bin"
    for script in ("smsrelay", "smsrelay-salesforce"):
        done = run(bin_ / script, "--help", cwd=venv)
        assert "usage:" in done.stdout
    # The modules come from the venv's site-packages, not from this checkout.
    where = run(
        bin_ / "python",
        "-c",
        "import smsrelay, smsrelay_salesforce, smsrelay_airflow as a; print(a.__file__)",
        cwd=venv,
    )
    assert where.stdout.startswith(str(venv)) and "site-packages" in where.stdout


def test_airflow_discovers_the_provider_from_the_wheel(venv, tmp_path):
    home = tmp_path / "airflow"
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    }
    code = (
        "import json\n"
        "from airflow.providers_manager import ProvidersManager\n"
        "pm = ProvidersManager()\n"
        "info = pm.providers['smsrelay-airflow']\n"
        "hooks = sorted(k for k, v in pm.hooks.items() if v and v.package_name == 'smsrelay-airflow')\n"
        "print(json.dumps({'version': info.version, 'hooks': hooks}))\n"
    )
    done = run(venv / "bin" / "python", "-c", code, env=env, cwd=tmp_path)
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["version"] == "0.1.0"
    assert found["hooks"], "the provider's connection type is not registered"


def test_the_bridge_finds_its_shipped_metadata(venv, tmp_path):
    code = (
        "from smsrelay_salesforce.schema import default_metadata_dir, load_schema\n"
        "d = default_metadata_dir()\n"
        "print(d)\n"
        "print(sorted(o.name for o in load_schema(d) if o.name.endswith('__c')))\n"
    )
    done = run(venv / "bin" / "python", "-c", code, cwd=tmp_path)
    where, objects = done.stdout.strip().splitlines()[-2:]
    assert where.startswith(str(venv)) and where.endswith("smsrelay_salesforce/metadata")
    assert "SMS_Message__c" in objects
