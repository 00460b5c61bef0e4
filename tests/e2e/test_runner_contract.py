"""The Action as GitHub's runner builds and runs it, reproduced without a Docker daemon.

What the runner does (actions/runner, ``src/Runner.Worker``):

* ``Handlers/ContainerActionHandler.cs``: for a ``runs.image`` that ends in ``Dockerfile``,
  ``dockerFile = Path.Combine(ActionDirectory, Data.Image)`` and
  ``dockerManager.DockerBuild(ExecutionContext, workspace, dockerFile,
  Directory.GetParent(dockerFile).FullName, imageName)``: the build context is the
  Dockerfile's own folder, not the repository root (actions/runner#471);
* ``Container/DockerCommandManager.cs``: ``docker build -t {tag} -f "{dockerFile}"
  "{dockerContext}"``, so the context's ``.dockerignore`` decides what is sent;
* ``ActionRunner.cs``, "Merge the default inputs from the definition": every input
  action.yml declares and ``with:`` omits gets its ``default`` (an empty string without one);
* ``Handlers/Handler.cs``, ``AddInputsToEnvironment``:
  ``INPUT_{name.Replace(' ', '_').ToUpperInvariant()}``, so hyphens are kept (``INPUT_API-KEY``);
* the container gets only that environment, the ``GITHUB_*`` context and the image's
  ``ENV``; its working directory is the workspace, and it runs the image's ``ENTRYPOINT``.

This test copies exactly the context the runner would send, parses the Dockerfile with
``dockerfile-parse``, plays each stage's ``WORKDIR``/``ENV``/``COPY``/``RUN`` into a
temporary root (image paths such as ``/opt/venv`` map into it), and runs the
``ENTRYPOINT`` under ``env -i`` against a loopback emulator.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from dockerfile_parse import DockerfileParser

from smsrelay.emulators.kudosity_v2 import KudosityV2Emulator
from tests.fixtures.action import action_metadata, parse_runner_file, read_runner_file

ROOT = Path(__file__).resolve().parents[2]
# One worker builds the image once (pytest -n 2 --dist loadgroup; the fixtures are per session,
# since that worker may interleave other modules' tests).
pytestmark = pytest.mark.xdist_group("runner-contract")
KEY = "kv2-runner-key-0123456789"
SENDER = "61481074185"
OK, OK_2 = "+61491570156", "+61491570157"


# -- the build context, as docker's .dockerignore rules select it ------------------------------


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """One .dockerignore pattern as moby's patternmatcher compiles it: Go's filepath.Match
    (``*`` and ``?`` stop at ``/``) plus ``**`` for any number of directories."""
    out, i = "", 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif c == "*":
            out, i = out + "[^/]*", i + 1
        elif c == "?":
            out, i = out + "[^/]", i + 1
        elif c == "\\" and i + 1 < len(pattern):
            out, i = out + re.escape(pattern[i + 1]), i + 2
        else:
            out, i = out + re.escape(c), i + 1
    return re.compile(out + r"\Z")


@dataclass(frozen=True)
class Rule:
    """One .dockerignore line: comments and blanks skipped, the path cleaned, ``!`` re-includes."""

    exclude: bool
    pattern: str

    @property
    def regex(self) -> re.Pattern[str]:
        return _pattern_regex(self.pattern)


def dockerignore_rules(context: Path) -> list[Rule]:
    path = context / ".dockerignore"
    rules = []
    for line in path.read_text(encoding="utf-8").splitlines() if path.exists() else []:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        include = line.startswith("!")
        rules.append(Rule(not include, os.path.normpath(line.lstrip("!").strip()).lstrip("/")))
    return rules


def excluded(rel: str, rules: list[Rule]) -> bool:
    """The last rule that matches the path or one of its parents wins (MatchesOrParentMatches)."""
    parts = rel.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    result = False
    for rule in rules:
        if any(rule.regex.match(c) for c in candidates):
            result = rule.exclude
    return result


def may_reinclude_below(rel_dir: str, rules: list[Rule]) -> bool:
    """Whether a ``!`` rule could match something under an excluded directory; docker's
    walker skips the directory otherwise (so does this copy: .venv and .git are not read)."""
    dir_parts = rel_dir.split("/")
    for rule in rules:
        if rule.exclude:
            continue
        parts = rule.pattern.split("/")
        for i, name in enumerate(dir_parts):
            if i >= len(parts):
                break
            if "**" in parts[i]:
                return True
            if not _pattern_regex(parts[i]).match(name):
                break
        else:
            if len(parts) > len(dir_parts):
                return True
    return False


def copy_context(context: Path, dest: Path) -> list[str]:
    """Copy the files docker would send for ``context``; return their relative paths."""
    rules = dockerignore_rules(context)
    sent = []
    for dirpath, dirnames, filenames in os.walk(context):
        base = Path(dirpath).relative_to(context).as_posix()
        rels = {d: d if base == "." else f"{base}/{d}" for d in dirnames}
        dirnames[:] = [d for d in dirnames if not excluded(rels[d], rules) or may_reinclude_below(rels[d], rules)]
        for name in filenames:
            src = Path(dirpath) / name
            rel = src.relative_to(context).as_posix()
            if not excluded(rel, rules):
                (dest / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dest / rel)
                sent.append(rel)
    return sorted(sent)


# -- the Dockerfile, stage by stage ------------------------------------------------------------


@dataclass
class Stage:
    name: str | None
    instructions: list[dict[str, Any]] = field(default_factory=list)


def stages(dockerfile: Path) -> list[Stage]:
    parser = DockerfileParser(path=str(dockerfile))
    out: list[Stage] = []
    for ins in parser.structure:
        if ins["instruction"] == "FROM":
            words = ins["value"].split()
            out.append(Stage(words[2] if len(words) == 3 and words[1].upper() == "AS" else None))
        elif ins["instruction"] != "COMMENT":
            out[-1].instructions.append(ins)
    return out


def args_of(value: str) -> list[str]:
    """An instruction's arguments: exec form (a JSON array) or shell words."""
    value = value.strip()
    if value.startswith("["):
        words: list[str] = json.loads(value)
        return words
    return shlex.split(value)


def copy_sources(ins: dict[str, Any]) -> tuple[dict[str, str], list[str], str]:
    """A COPY/ADD's ``--flags``, sources and destination."""
    words = args_of(ins["value"])
    flags = dict(w[2:].split("=", 1) for w in words if w.startswith("--"))
    rest = [w for w in words if not w.startswith("--")]
    return flags, rest[:-1], rest[-1]


def env_pairs(ins: dict[str, Any]) -> dict[str, str]:
    words = args_of(ins["value"])
    assert all("=" in w for w in words), f"Dockerfile line {ins['startline'] + 1}: use ENV KEY=value"
    return dict(w.split("=", 1) for w in words)


class Rootfs:
    """One stage's filesystem in a temporary directory: image path ``/opt/venv`` is ``<root>/opt/venv``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True)

    def path(self, image_path: str) -> Path:
        return self.root / image_path.lstrip("/")

    def translate(self, text: str) -> str:
        """Absolute image paths inside a command or an ENV value, mapped into the root."""
        return re.sub(r"(?<![\w./-])/(?=(?:opt|src)\b)", str(self.root) + "/", text)


def copy_into(origin: Path, dest: Path, *, into_dir: bool) -> None:
    """Docker's COPY rule: a directory's contents go into ``dest``; a file goes to ``dest``,
    or under it when ``dest`` ends with ``/``."""
    if origin.is_dir():
        shutil.copytree(origin, dest, symlinks=True, dirs_exist_ok=True)
    else:
        target = dest / origin.name if into_dir else dest
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(origin, target)


@dataclass
class Image:
    """What the played Dockerfile left: the final stage's root, ENV and ENTRYPOINT."""

    root: Rootfs
    env: dict[str, str]
    entrypoint: list[str]


def play(dockerfile: Path, context: Path, work: Path, python_shim: Path) -> Image:
    """Run every stage's WORKDIR, ENV, COPY and RUN, each stage in its own root.

    ``python`` in a RUN line is this test's interpreter, standing in for the base image's
    Python (the install procedure needs it only for pip). pip's own settings (index, proxy,
    cache) pass through, as a builder's network settings would.
    """
    roots: dict[str, Rootfs] = {}
    image: Image | None = None
    for n, stage in enumerate(stages(dockerfile)):
        fs, env, workdir, entrypoint = Rootfs(work / f"stage{n}"), {}, "/", []
        roots[stage.name or str(n)] = fs
        for ins in stage.instructions:
            kind, where = ins["instruction"], f"Dockerfile line {ins['startline'] + 1}"
            if kind == "WORKDIR":
                workdir = ins["value"].strip()
                fs.path(workdir).mkdir(parents=True, exist_ok=True)
            elif kind == "ENV":
                env.update({k: fs.translate(v) for k, v in env_pairs(ins).items()})
            elif kind in ("COPY", "ADD"):
                flags, sources, dest = copy_sources(ins)
                target = fs.path(dest if dest.startswith("/") else f"{workdir}/{dest}")
                for src in sources:
                    origin = roots[flags["from"]].path(src) if "from" in flags else context / src
                    assert origin.exists(), f"{where}: {src} is not in the build context"
                    copy_into(origin, target, into_dir=dest.endswith("/") or len(sources) > 1)
            elif kind == "RUN":
                passed = ("PIP_", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy")
                run_env = {k: v for k, v in os.environ.items() if k.startswith(passed)}
                run_env |= {"HOME": os.environ.get("HOME", str(work)), **env, "PATH": f"{python_shim}:/usr/bin:/bin"}
                run_env.pop("PIP_NO_CACHE_DIR", None)  # the image skips pip's cache for small layers; tests use it
                command = fs.translate(ins["value"])
                assert not command.lstrip().startswith("["), f"{where}: exec-form RUN is not played"
                done = subprocess.run(
                    ["sh", "-ec", command], cwd=fs.path(workdir), env=run_env, capture_output=True, text=True
                )
                assert done.returncode == 0, f"{where}: RUN failed\n{done.stdout}\n{done.stderr}"
            elif kind == "ENTRYPOINT":
                entrypoint = [fs.translate(a) for a in args_of(ins["value"])]
            else:
                # Anything else would change the image in a way this test does not reproduce.
                assert kind == "LABEL", f"{where}: {kind} is not played by this test; teach play() about it"
        image = Image(fs, env, entrypoint)
    assert image is not None, "the Dockerfile has no stage"
    return image


# -- the runner's side -------------------------------------------------------------------------


def runner_dockerfile() -> tuple[Path, Path]:
    """The Dockerfile the runner builds for action.yml, and its build context (its folder)."""
    image = action_metadata()["runs"]["image"]
    assert image.endswith("Dockerfile"), f"runs.image {image!r}: the runner would pull it, not build it"
    dockerfile = ROOT / image
    return dockerfile, dockerfile.parent


def runner_inputs(with_: dict[str, str]) -> dict[str, str]:
    """``INPUT_<NAME>`` for every declared input: the ``with:`` value, else action.yml's default."""
    declared = action_metadata()["inputs"]
    assert set(with_) <= set(declared), f"not declared in action.yml: {set(with_) - set(declared)}"
    values = {name: with_.get(name, str(spec.get("default", ""))) for name, spec in declared.items()}
    return {f"INPUT_{name.replace(' ', '_').upper()}": value for name, value in values.items()}


def run_entrypoint(image: Image, tmp: Path, with_: dict[str, str]) -> tuple[int, str, dict[str, str], str]:
    """Run the ENTRYPOINT under ``env -i`` with only what the runner gives a container."""
    workspace, files, home = tmp / "workspace", tmp / "file_commands", tmp / "home"
    for d in (workspace, files, home):
        d.mkdir(parents=True, exist_ok=True)
    (files / "set_output").write_text("")
    (files / "step_summary").write_text("")
    (tmp / "event.json").write_text('{"ref": "refs/heads/main"}')
    env = {
        # The base image's own ENV (python:3.11-slim), then the Dockerfile's.
        "PATH": "/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin",
        "LANG": "C.UTF-8",
        **image.env,
        "HOME": str(home),
        "CI": "true",
        "GITHUB_ACTIONS": "true",
        "GITHUB_WORKSPACE": str(workspace),
        "GITHUB_OUTPUT": str(files / "set_output"),
        "GITHUB_STEP_SUMMARY": str(files / "step_summary"),
        "GITHUB_EVENT_PATH": str(tmp / "event.json"),
        "GITHUB_EVENT_NAME": "push",
        "GITHUB_REPOSITORY": "acme/api",
        "GITHUB_RUN_ID": "42",
        "GITHUB_RUN_ATTEMPT": "1",
        "GITHUB_JOB": "notify",
        "GITHUB_ACTION": "sms",
        "GITHUB_SHA": "0123456789abcdef0123456789abcdef01234567",
        "GITHUB_REF": "refs/heads/main",
        "RUNNER_OS": "Linux",
        "RUNNER_TEMP": str(tmp),
        **runner_inputs(with_),
    }
    argv = ["env", "-i", *(f"{k}={v}" for k, v in env.items()), *image.entrypoint]
    done = subprocess.run(argv, cwd=workspace, env={}, capture_output=True, text=True, timeout=120)
    outputs = parse_runner_file(read_runner_file(files / "set_output"))
    return done.returncode, done.stdout + done.stderr, outputs, read_runner_file(files / "step_summary")


@pytest.fixture(scope="session")
def context_copy(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """The build context exactly as the runner's ``docker build`` would send it."""
    _, context = runner_dockerfile()
    dest = tmp_path_factory.mktemp("context")
    return dest, copy_context(context, dest)


@pytest.fixture(scope="session")
def image(context_copy: tuple[Path, list[str]], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Image]:
    """The Dockerfile played from the context copy: the image's install step, for real."""
    dockerfile, _ = runner_dockerfile()
    work = tmp_path_factory.mktemp("image")
    shim = work / "shim"
    shim.mkdir()
    (shim / "python").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    (shim / "python").chmod(0o755)
    yield play(dockerfile, context_copy[0], work, shim)


def test_action_yml_builds_the_root_dockerfile():
    dockerfile, context = runner_dockerfile()
    assert dockerfile == ROOT / "Dockerfile" and context == ROOT
    assert not (ROOT / "Dockerfile.dockerignore").exists(), "BuildKit would prefer it over .dockerignore"


def test_every_copy_source_is_in_the_context_and_the_context_is_small(context_copy):
    copy, sent = context_copy
    dockerfile, _ = runner_dockerfile()
    for stage in stages(dockerfile):
        for ins in stage.instructions:
            if ins["instruction"] not in ("COPY", "ADD"):
                continue
            flags, sources, _ = copy_sources(ins)
            if "from" in flags:
                continue
            for src in sources:
                where = f"Dockerfile line {ins['startline'] + 1}: {src}"
                assert not src.startswith("/") and ".." not in Path(src).parts, f"{where} leaves the context"
                assert "://" not in src, f"{where}: ADD from a URL is not reproducible"
                assert list(copy.glob(src.rstrip("/"))), f"{where} is not in the build context (.dockerignore?)"
    tops = {rel.split("/", 1)[0] for rel in sent}
    assert tops == {"pyproject.toml", "README.md", "locks", "smsrelay", "action"}, tops
    assert not [rel for rel in sent if "__pycache__" in rel or rel.endswith(".pyc")]
    assert sorted(rel for rel in sent if rel.startswith("locks/")) == ["locks/action.txt", "locks/build.txt"]
    size = sum((copy / rel).stat().st_size for rel in sent)
    assert size < 3_000_000, f"the build context is {size / 1e6:.1f} MB"


def test_dockerignore_rules_as_docker_reads_them(tmp_path):
    (tmp_path / ".dockerignore").write_text("# c\n*\n!src/**\n**/__pycache__\n!keep.txt\n/abs/x\n")
    rules = dockerignore_rules(tmp_path)
    assert excluded("docs/a.md", rules) and excluded("Makefile", rules) and excluded("abs/x", rules)
    assert not excluded("src/a/b.py", rules) and not excluded("keep.txt", rules)
    assert excluded("src/a/__pycache__/b.pyc", rules)
    # The walk skips an excluded directory unless a "!" rule reaches below it.
    assert not may_reinclude_below("docs", rules) and may_reinclude_below("src", rules)


@pytest.mark.slow
def test_the_image_runs_as_the_runner_runs_it(image, start_emulator, tmp_path):
    """A send through the Kudosity V2 emulator: inputs as INPUT_*, defaults from action.yml."""
    emu: KudosityV2Emulator = start_emulator("kudosity-v2", api_keys=(KEY,))  # type: ignore[assignment]
    code, log, outputs, summary = run_entrypoint(
        image,
        tmp_path,
        {
            "provider": "kudosity",
            "api-key": KEY,
            "api-url": emu.url,
            "from": SENDER,
            "to": f"{OK}, {OK_2}",
            "message": "Deployed {{ github.repository }}",
        },
    )
    assert code == 0, log
    posts = emu.received("POST", "/v2/sms")
    assert sorted(r.json()["recipient"] for r in posts) == [OK[1:], OK_2[1:]]
    assert {r.json()["message"] for r in posts} == {"Deployed acme/api"}
    assert set(outputs) == set(action_metadata()["outputs"])
    assert len(json.loads(outputs["message-ids"])) == 2 and outputs["dry-run"] == "false"
    assert "| 1 |" in summary and KEY not in log.replace(f"::add-mask::{KEY}", "")


@pytest.mark.slow
def test_a_bad_input_exits_2_naming_the_input(image, tmp_path):
    code, log, _, _ = run_entrypoint(
        image, tmp_path, {"provider": "sandbox", "to": OK, "message": "hi", "retries": "99"}
    )
    assert code == 2
    assert "::error title=Invalid input%3A retries::" in log


@pytest.mark.slow
def test_the_image_holds_the_core_only(image):
    site = next(image.root.path("/opt/venv").glob("lib/python3*/site-packages"))
    installed = {p.name.split("-")[0].lower() for p in site.glob("*.dist-info")}
    assert installed == {
        "certifi", "charset_normalizer", "idna", "jinja2", "markupsafe", "phonenumbers", "pyyaml", "requests",
        "smsrelay", "urllib3",
    }  # fmt: skip
    assert not (site / "phonenumbers" / "geodata").exists()
    assert (
        not any(site.glob("smsrelay-*.dist-info/direct_url.json"))
        or "editable" not in next(site.glob("smsrelay-*.dist-info/direct_url.json")).read_text()
    )
