"""Build the Action's runtime environment: the core and its locked dependencies, nothing else.

One procedure for the image (``RUN python action/install.py /opt/venv``), the
contract tests and the start-up benchmark, so what is tested is what ships:

1. build the core's wheel, non-editable, in a throwaway venv that holds only the locked
   build tools (``pip install --require-hashes --no-deps -r locks/build.txt``, then
   ``pip wheel --no-deps --no-build-isolation``), from a clean copy of the sources, so
   no stale ``build/`` directory can leak old modules into it;
2. a venv without pip (the image never installs anything at run time), and into it
   ``pip install --require-hashes --no-deps -r locks/action.txt`` (the core's runtime
   dependencies, hashed; no extras: no Airflow, no Salesforce, no server), then the
   wheel with ``--no-deps``;
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
# The image's two locks, relative to SOURCE: runtime dependencies, and the build tools.
RUNTIME_LOCK = "locks/action.txt"
BUILD_LOCK = "locks/build.txt"
# What the image's build reads; a change to any of them means a new venv.
BUILD_INPUTS = ("Dockerfile", ".dockerignore", "action/install.py", RUNTIME_LOCK, BUILD_LOCK, "pyproject.toml")
# The core's distribution as the wheel build needs it (README.md is its long description).
WHEEL_SOURCES = ("pyproject.toml", "README.md", "smsrelay")
# Modules of phonenumbers that smsrelay.phone never imports (phonenumbers' own
# __init__ imports none of them either: geocoder, carrier and timezone are opt-in).
PRUNE = ("phonenumbers/geodata", "phonenumbers/carrierdata", "phonenumbers/tzdata")


def site_packages(target: Path) -> Path:
    """The runtime venv's site-packages directory."""
    found = sorted(target.glob("lib/python3*/site-packages"))
    if not found:
        raise SystemExit(f"no site-packages under {target}")
    return found[0]


def _pip(env: Path, *args: str | Path) -> None:
    """Run this interpreter's pip against another venv's interpreter (that venv needs no pip)."""
    cmd = [sys.executable, "-m", "pip", "--python", str(env / "bin" / "python"), "--disable-pip-version-check"]
    subprocess.run([*cmd, *map(str, args), "--quiet"], check=True)


def build_wheel(source: Path, work: Path) -> Path:
    """The core's wheel, built by the locked build tools from a clean copy of ``source``."""
    tree, tools, wheels = work / "src", work / "build-tools", work / "wheels"
    for rel in WHEEL_SOURCES:
        src = source / rel
        if src.is_dir():
            shutil.copytree(src, tree / rel, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            tree.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, tree / rel)
    venv.EnvBuilder(with_pip=False).create(tools)
    _pip(tools, "install", "--require-hashes", "--no-deps", "-r", source / BUILD_LOCK)
    # No build isolation: the backend is the locked one just installed, never a fresh download.
    _pip(tools, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "--wheel-dir", wheels, tree)
    (wheel,) = wheels.glob("smsrelay-*.whl")
    return wheel


def install(target: Path, source: Path = HERE.parent) -> Path:
    """Create ``target`` and install the core from ``source`` into it; return site-packages."""
    with tempfile.TemporaryDirectory(prefix="smsrelay-action-build-") as tmp:
        wheel = build_wheel(source, Path(tmp))
        venv.EnvBuilder(with_pip=False, clear=True).create(target)
        _pip(target, "install", "--no-compile", "--require-hashes", "--no-deps", "-r", source / RUNTIME_LOCK)
        _pip(target, "install", "--no-compile", "--no-deps", "--no-index", wheel)
    site = site_packages(target)
    for rel in PRUNE:
        shutil.rmtree(site / rel, ignore_errors=True)
    # Compile after pruning (the geocoder tables alone are 40 MB of Python), so start-up
    # never compiles: the image sets PYTHONDONTWRITEBYTECODE and could not cache it.
    subprocess.run([str(target / "bin" / "python"), "-m", "compileall", "-q", "-j", "0", str(site)], check=True)
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
