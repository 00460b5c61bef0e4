"""Build the Action's runtime environment: the core and its dependencies, nothing else.

One procedure for the image (``RUN python action/install.py /opt/venv``), the
contract tests and the start-up benchmark, so what is tested is what ships:

1. a venv without pip (the image never installs anything at run time);
2. ``pip install --constraint action/constraints.txt <repo root>``: the core,
   non-editable, without extras (no Airflow, no Salesforce, no server);
3. prune data the core never loads: ``phonenumbers``' geocoder, carrier and
   time-zone tables (about 43 MB; ``smsrelay.phone`` only parses and validates);
4. byte-compile what is left, once, at build time.

Usage: ``python action/install.py TARGET [SOURCE]``; SOURCE defaults to the repository root.
"""

from __future__ import annotations

import fcntl
import hashlib
import shutil
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

HERE = Path(__file__).resolve().parent
CONSTRAINTS = HERE / "constraints.txt"
# What the image's build reads; a change to any of them means a new venv.
BUILD_INPUTS = ("action/Dockerfile", "action/install.py", "action/constraints.txt", "pyproject.toml")
# Modules of phonenumbers that smsrelay.phone never imports (phonenumbers' own
# __init__ imports none of them either: geocoder, carrier and timezone are opt-in).
PRUNE = ("phonenumbers/geodata", "phonenumbers/carrierdata", "phonenumbers/tzdata")


def site_packages(target: Path) -> Path:
    """The runtime venv's site-packages directory."""
    found = sorted(target.glob("lib/python3*/site-packages"))
    if not found:
        raise SystemExit(f"no site-packages under {target}")
    return found[0]


def install(target: Path, source: Path = HERE.parent) -> Path:
    """Create ``target`` and install the core from ``source`` into it; return site-packages."""
    venv.EnvBuilder(with_pip=False, clear=True).create(target)
    python = target / "bin" / "python"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--quiet",
            "--no-cache-dir",
            "--no-compile",
            "--disable-pip-version-check",
            "--constraint",
            str(CONSTRAINTS),
            str(source),
        ],
        check=True,
    )
    site = site_packages(target)
    for rel in PRUNE:
        shutil.rmtree(site / rel, ignore_errors=True)
    # Compile after pruning (the geocoder tables alone are 40 MB of Python), so start-up
    # never compiles: the image sets PYTHONDONTWRITEBYTECODE and could not cache it.
    subprocess.run([str(python), "-m", "compileall", "-q", "-j", "0", str(site)], check=True)
    return site


def build_hash(source: Path = HERE.parent) -> str:
    """A digest of everything the install reads: the build files and the core's source."""
    h = hashlib.sha256()
    files = [source / p for p in BUILD_INPUTS] + sorted((source / "smsrelay").rglob("*.py"))
    for path in files:
        h.update(str(path.relative_to(source)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def cached(source: Path = HERE.parent, *, build: bool = True) -> Path | None:
    """The runtime venv for the current sources, under the temp dir; built once.

    Concurrent callers (pytest-xdist workers, the benchmark) share it through a
    file lock. With ``build=False``, returns None instead of building.
    """
    base = Path(tempfile.gettempdir()) / "smsrelay-action-venvs"
    base.mkdir(exist_ok=True)
    target = base / build_hash(source)
    with (base / "build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (target / ".complete").exists():
            if not build:
                return None
            install(target, source)
            (target / ".complete").write_text("ok")
    return target


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        raise SystemExit(__doc__)
    install(Path(sys.argv[1]), Path(sys.argv[2]) if len(sys.argv) == 3 else HERE.parent)
