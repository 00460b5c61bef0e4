"""Every fenced block in README.md and docs/ runs offline against the emulators, or says why not.

A block is run by its language:

- ``python``: the page's Python blocks run in order in one interpreter (a later block may use
  an earlier one's ``client``), in a workspace that holds the docs' own config files
  (``# kudosity.yaml`` blocks) pointed at the emulators, and sample files (``team.csv``).
- ``sh``, ``bash``, ``console``: every ``smsrelay …`` line runs as a subprocess and must exit 0;
  a server (``emulate``, ``webhooks serve``, ``--follow``) must come up, then is stopped.
- ``yaml``: a workflow's ``smsrelay/smsrelay@v1`` steps run through the Action's entrypoint as
  the runner runs it; a smsrelay config file must load.

A block that cannot run offline carries a marker in the docs source, right before it:
``<!-- docs-test: skip (the reason) -->``; pytest lists each as skipped with that reason.
``<!-- docs-test: bash -->`` runs a whole shell session (``curl`` against an emulator it starts)
with bash, its ports moved to free ones. ``<!-- docs-test: output -->`` marks a block as the
printed output of the block before it (``…`` stands for any text). Blocks without a language
(diagrams, sample payloads) are not code.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import shlex
import shutil
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from smsrelay.emulators.base import Emulator, EmuRequest, EmuResponse, json_response, route
from smsrelay.emulators.kaleyra import KaleyraEmulator
from smsrelay.emulators.kudosity_v1 import KudosityV1Emulator
from smsrelay.emulators.kudosity_v2 import KudosityV2Emulator
from smsrelay.emulators.mesms import MeSmsEmulator
from smsrelay.emulators.smskit import SmsKitEmulator
from tests.conftest import ROOT
from tests.fixtures.action import wait_until

pytestmark = pytest.mark.xdist_group("docs-examples")

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
FENCE = re.compile(r"^(\s*)(`{3,})([\w-]*)\s*$")
MARKER = re.compile(r"<!--\s*docs-test:\s*(skip|output|bash)\b\s*(?:\((.*)\))?\s*-->")
RUNNABLE = {"python": "python", "sh": "cli", "bash": "cli", "console": "cli", "shell": "cli", "yaml": "yaml"}

# What the docs' ${ENV} references and the workflows' secrets resolve to: the emulators' test credentials.
SECRETS = {
    "KUDOSITY_API_KEY": "test-key",
    "KUDOSITY_API_SECRET": "test-secret",
    "SMSRELAY_HOOK_TOKEN": "docs-hook-token-0123456789",
    "MESMS_API_KEY": "test-key",
    "SMSKIT_API_KEY": "sk_test_key",
    "SMSKIT_WEBHOOK_SECRET": "docs-smskit-secret-0123456789",
    "KALEYRA_API_KEY": "test-key",
    "KALEYRA_CALLBACK_TOKEN": "docs-kaleyra-token-0123456789",
    # The approver answers a gate through the control API (see _approver).
    "ONCALL_NUMBERS": "+61491570004",
    "RELEASE_NUMBERS": "+61491570156",
    "RELEASE_MANAGER": "+61491570004",
    "HOOK_TOKEN": "docs-hook-token-0123456789",
}
WORKFLOW_VARS = {"KUDOSITY_NUMBER": "61481074185"}
SAMPLES = {
    "team.csv": "to,name,region\n+61491570156,Ann,AU\n+61491570157,Bo,AU\n",
    # 450 customers, as the SMSKit page's preview shows them.
    "customers.csv": "to,name\n" + "".join(f"+6149157{i:04d},Customer {i}\n" for i in range(450)),
    "alert.txt": "Alert for {{ name }}: the nightly load failed",
    "reminder.txt": "Hi {{ name }}, a reminder of your booking tomorrow",
    ".github/sms/release.txt": "Release {{ github.ref_name }} is out",
}


@dataclass(frozen=True)
class Block:
    page: Path
    line: int
    lang: str
    body: str
    marker: str | None  # "skip", "output" or "bash"
    reason: str

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"

    @property
    def kind(self) -> str:
        if self.marker in ("skip", "bash"):
            return self.marker
        return RUNNABLE.get(self.lang, "illustration")


def read_blocks(page: Path) -> list[Block]:
    lines = page.read_text(encoding="utf-8").splitlines()
    out: list[Block] = []
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        _, ticks, lang = m.groups()
        end = i + 1
        while end < len(lines) and lines[end].strip() != ticks:
            end += 1
        body = textwrap.dedent("\n".join(lines[i + 1 : end]))
        before = next((lines[k] for k in range(i - 1, -1, -1) if lines[k].strip()), "")
        marker = MARKER.search(before)
        kind, reason = (marker.group(1), marker.group(2) or "") if marker else (None, "")
        out.append(Block(page, i + 1, lang, body, kind, reason))
        i = end + 1
    return out


BLOCKS = [b for page in PAGES for b in read_blocks(page)]


def by_kind(*kinds: str) -> list[Any]:
    return [pytest.param(b, id=b.where) for b in BLOCKS if b.kind in kinds and b.marker != "output"]


def test_every_block_runs_or_says_why_not() -> None:
    counts: dict[str, int] = {}
    for b in BLOCKS:
        counts[b.kind] = counts.get(b.kind, 0) + 1
        if b.marker == "skip":
            assert b.reason.strip(), f"{b.where}: a skip marker needs a reason in parentheses"
        if b.kind == "illustration" and b.marker is None:
            # An untyped block is output or a diagram; a command in it would escape the test.
            assert not re.search(r"^\$ |^>>> ", b.body, re.M), f"{b.where}: give this block a language"
    print("docs blocks:", counts)
    assert counts.get("python", 0) and counts.get("cli", 0) and counts.get("yaml", 0)


@pytest.mark.parametrize("block", by_kind("skip"))
def test_block_skipped_with_a_reason(block: Block) -> None:
    pytest.skip(f"{block.where}: {block.reason}")


# -- the emulators and the workspace every block runs in -------------------------------------------
# The docs' example receiver; pushes and callbacks go to a local sink instead, so nothing leaves the host.
RECEIVER = "https://hooks.example.com"


class Receiver(Emulator):
    """Answers 200 to every webhook and callback the emulators push."""

    name = "docs-receiver"

    @route("POST", r"/.*")
    def post(self, req: EmuRequest) -> EmuResponse:
        return json_response({"ok": True})

    @route("GET", r"/.*")
    def get(self, req: EmuRequest) -> EmuResponse:
        return json_response({"ok": True})


@dataclass
class Docs:
    emulators: dict[str, Emulator]
    workspace: Path
    env: dict[str, str]
    receiver: str

    def local(self, text: str) -> str:
        """The docs' text with the example receiver's URL pointing at the local sink."""
        return text.replace(RECEIVER, self.receiver)


def _config_blocks() -> dict[str, str]:
    """The docs' own config files, by the name in their first line (``# kudosity.yaml``)."""
    found = {}
    for b in BLOCKS:
        first = b.body.splitlines()[0] if b.body else ""
        if b.lang == "yaml" and re.fullmatch(r"# [\w.-]+\.yaml", first):
            found[first[2:]] = b.body
    return found


@pytest.fixture(scope="module")
def docs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Docs]:
    fast = {"sent_after": 0.05, "delivered_after": 0.1}
    emus: dict[str, Emulator] = {
        "kudosity-v2": KudosityV2Emulator(reply_after=0.2, **fast),
        "kudosity-v1": KudosityV1Emulator(delivered_after=0.1, reply_after=0.2),
        "smskit": SmsKitEmulator(),
        "mesms": MeSmsEmulator(**fast),
        "kaleyra": KaleyraEmulator(sids=("HXAP0000000000", "HXAP16XXXXXX01IN"), reply_after=0.2, **fast),
    }
    receiver = Receiver().start()
    for emu in emus.values():
        emu.start()
    workspace = tmp_path_factory.mktemp("docs-workspace")
    for name, text in SAMPLES.items():
        (workspace / name).parent.mkdir(parents=True, exist_ok=True)
        (workspace / name).write_text(text, encoding="utf-8")
    urls = {
        "kudosity": emus["kudosity-v2"].url,
        "smskit": emus["smskit"].url,
        "mesms": emus["mesms"].url,
        "kaleyra": emus["kaleyra"].url,
    }
    for name, text in _config_blocks().items():
        data = yaml.safe_load(text.replace(RECEIVER, receiver.url))
        provider = data["provider"]
        api = (data.get(provider) or {}).get("api")
        url = emus["kudosity-v1"].url if api == "v1" else urls[provider]
        data.setdefault(provider, {})["base_url"] = url  # the one change: the emulator, not the vendor
        (workspace / name).write_text(yaml.safe_dump(data), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMSRELAY_")}
    env.update(SECRETS)
    env.update(
        {
            "SMSRELAY_SANDBOX_PATH": str(workspace / "sandbox.db"),
            "XDG_STATE_HOME": str(workspace / "state"),  # the default inbox lives here, not in ~
            # The receiver section of webhooks.md exports these before registering the receiver.
            "SMSRELAY_KUDOSITY_WEBHOOK_SECRET": SECRETS["SMSRELAY_HOOK_TOKEN"],
            "SMSRELAY_SMSKIT_WEBHOOK_SECRET": SECRETS["SMSKIT_WEBHOOK_SECRET"],
            "SMSRELAY_KUDOSITY_API_KEY": "test-key",
            "SMSRELAY_KUDOSITY_BASE_URL": urls["kudosity"],
            "SMSRELAY_KUDOSITY_SENDER": "61481074185",
            "SMSRELAY_SMSKIT_API_KEY": "sk_test_key",
            "SMSRELAY_SMSKIT_BASE_URL": urls["smskit"],
            "SMSRELAY_MESMS_API_KEY": "test-key",
            "SMSRELAY_MESMS_BASE_URL": urls["mesms"],
            "SMSRELAY_MESMS_SENDER": "Acme",
            "SMSRELAY_KALEYRA_API_KEY": "test-key",
            "SMSRELAY_KALEYRA_SID": "HXAP0000000000",
            "SMSRELAY_KALEYRA_BASE_URL": urls["kaleyra"],
            "SMSRELAY_EMULATOR_URL": urls["kudosity"],
        }
    )
    yield Docs(emus, workspace, env, receiver.url)
    for emu in [*emus.values(), receiver]:
        emu.stop()
    away = {p.url for emu in emus.values() for p in emu.pushes if not p.url.startswith(receiver.url)}
    assert not away, f"the docs examples pushed off this host: {away}"


# -- Python: each page's blocks in order, in one interpreter ----------------------------------------
DRIVER = r"""
import contextlib, io, json, sys, traceback
blocks = json.load(sys.stdin)
ns = {"__name__": "__docs__"}
results = []
for where, code in blocks:
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            exec(compile(code, where, "exec"), ns)
        results.append({"where": where, "ok": True, "stdout": out.getvalue()})
    except BaseException:
        results.append({"where": where, "ok": False, "stdout": out.getvalue(), "error": traceback.format_exc()})
print(json.dumps(results))
"""

_page_runs: dict[Path, dict[str, Any]] = {}


def _run_page(page: Path, docs: Docs) -> dict[str, Any]:
    if page not in _page_runs:
        code = [(b.where, docs.local(b.body)) for b in BLOCKS if b.page == page and b.kind == "python"]
        proc = subprocess.run(
            [sys.executable, "-c", DRIVER],
            input=json.dumps(code),
            cwd=docs.workspace,
            env=docs.env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert proc.returncode == 0, proc.stderr
        _page_runs[page] = {r["where"]: r for r in json.loads(proc.stdout.splitlines()[-1])}
    return _page_runs[page]


def _expected_output(block: Block) -> Block | None:
    after = [b for b in BLOCKS if b.page == block.page and b.line > block.line]
    return after[0] if after and after[0].marker == "output" else None


def _matches(expected: str, actual: str) -> bool:
    pattern = ".*?".join(re.escape(part) for part in expected.strip().split("…"))
    return re.fullmatch(pattern, actual.strip(), re.S) is not None


@pytest.mark.parametrize("block", by_kind("python"))
def test_python_block(block: Block, docs: Docs) -> None:
    result = _run_page(block.page, docs)[block.where]
    assert result["ok"], f"{block.where} failed:\n{result['error']}"
    expected = _expected_output(block)
    if expected is not None:
        assert _matches(expected.body, result["stdout"]), f"{block.where} printed:\n{result['stdout']}"


# -- the command line ----------------------------------------------------------------------------------
def _commands(body: str, console: bool) -> list[tuple[str, list[str]]]:
    """The commands of a shell block, with continuations, each with the output a console block shows."""
    out: list[tuple[str, list[str]]] = []
    pending = ""
    for raw in body.splitlines():
        line = raw.rstrip()
        if pending:
            line = pending + " " + line.strip()
            pending = ""
        elif console:
            if not line.startswith("$ "):
                if out and line.strip():
                    out[-1][1].append(line)  # what the command before printed
                continue
            line = line[2:]
        if line.endswith("\\"):
            pending = line[:-1].rstrip()
            continue
        if line.strip() and not line.strip().startswith("#"):
            out.append((line.strip(), []))
    return out


# What varies from run to run in a shown output: ids, and what the docs elide with "…".
_VARIES = re.compile(r"…|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _shows(expected: list[str], printed: str) -> bool:
    """Every shown line appears, in order, in what was printed (whitespace runs are equal)."""
    lines = iter(printed.splitlines())
    for shown in expected:
        parts = [re.escape(" ".join(p.split())) for p in _VARIES.split(shown.strip())]
        pattern = re.compile(".*?".join(parts).replace("\\ ", r"\s+"))
        if not any(pattern.fullmatch(" ".join(line.split())) for line in lines):
            return False
    return True


VAR = re.compile(r"\$(?:\{(\w+)\}|(\w+))")


def _serves(argv: list[str]) -> bool:
    return argv[:1] == ["emulate"] or argv[:2] == ["webhooks", "serve"] or "--follow" in argv


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("block", by_kind("cli"))
def test_cli_block(block: Block, docs: Docs) -> None:
    ports: dict[str, str] = {}
    servers: list[subprocess.Popen[str]] = []
    try:
        for command, shown in _commands(block.body, console=block.lang == "console"):
            command, shown = docs.local(command), [docs.local(line) for line in shown]
            for old, new in ports.items():
                command = command.replace(f":{old}", f":{new}")
            words = shlex.split(command, comments=True)
            env = dict(docs.env)
            while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):
                name, _, value = words.pop(0).partition("=")
                env[name] = value
            assert words[:1] == ["smsrelay"], f"{block.where}: {words[:1]} cannot run offline: mark the block"
            # $NAME as the shell expands it: unset is empty (e.g. the first run's $CURSOR).
            argv = [VAR.sub(lambda m: env.get(m.group(1) or m.group(2), ""), w) for w in words[1:]]
            if _serves(argv):
                if "--port" in argv:  # a server gets a free port; later lines follow it
                    i = argv.index("--port") + 1
                    ports[argv[i]] = argv[i] = str(_free_port())
                servers.append(_start_server(argv, env, docs, block))
                continue
            proc = subprocess.run(
                [sys.executable, "-m", "smsrelay", *argv],
                cwd=docs.workspace,
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert proc.returncode == 0, f"{block.where}: `{command}` exited {proc.returncode}:\n{proc.stderr}"
            assert _shows(shown, proc.stdout), f"{block.where}: `{command}` printed:\n{proc.stdout}"
    finally:
        for server in servers:
            server.terminate()
            server.wait(timeout=10)


def _start_server(argv: list[str], env: dict[str, str], docs: Docs, block: Block) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "smsrelay", *argv],
        cwd=docs.workspace,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    # A server says where it listens, and a follower keeps running; a failure exits instead.
    ready, _, _ = select.select([proc.stdout], [], [], 10)
    if (ready and not proc.stdout.readline()) or proc.poll() not in (None, 0):
        proc.wait(timeout=10)
        stderr = proc.stderr.read() if proc.stderr else ""
        pytest.fail(f"{block.where}: `smsrelay {' '.join(argv)}` did not start:\n{stderr}")
    return proc


# -- YAML: config files load; workflows run through the Action's entrypoint ----------------------------
EXPR = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")


def _evaluate(expression: str, outputs: Mapping[str, Mapping[str, str]]) -> str:
    if m := re.fullmatch(r"secrets\.(\w+)", expression):
        return SECRETS[m.group(1)]
    if m := re.fullmatch(r"vars\.(\w+)", expression):
        return WORKFLOW_VARS[m.group(1)]
    if m := re.fullmatch(r"(?:steps|needs)\.([\w-]+)\.outputs\.([\w-]+)", expression):
        return outputs[m.group(1)][m.group(2)]
    if expression == "github.run_id":
        return "1234567890"
    if m := re.fullmatch(r"github\.event_name == '(\w+)'", expression):
        return str(m.group(1) == "push").lower()  # the fixture's runner says: a push
    raise AssertionError(f"no offline value for ${{{{ {expression} }}}}")


def _jobs(doc: Any) -> list[tuple[str, list[dict[str, Any]], Mapping[str, str]]]:
    """(job id, steps, the job's declared outputs) in the order written; a bare list is one job."""
    if isinstance(doc, list):
        return [("job", doc, {})]
    return [(name, job.get("steps", []), job.get("outputs", {})) for name, job in doc["jobs"].items()]


def _approver(emu: Emulator, inputs: Mapping[str, str]) -> Callable[[Mapping[str, str]], None]:
    """The approver answers the gate's SMS with YES (and its code, if it offers one), by the control API."""
    before = len(requests.get(f"{emu.url}/_emulator/messages", timeout=10).json())

    def answer(env: Mapping[str, str]) -> None:
        def listed() -> list[dict[str, Any]]:
            rows: list[dict[str, Any]] = requests.get(f"{emu.url}/_emulator/messages", timeout=10).json()
            return rows

        wait_until(lambda: len(listed()) > before)  # the gate's SMS went out
        sent = listed()
        code = re.search(r"YES (\d{4})", sent[-1]["body"])
        phone = (inputs.get("reply-from") or sent[-1]["to"]).split(",")[0].strip()
        reply = {"from": phone, "text": "YES" + (f" {code.group(1)}" if code else "")}
        requests.post(f"{emu.url}/_emulator/replies", json=reply, timeout=10).raise_for_status()

    return answer


@pytest.mark.parametrize("block", by_kind("yaml"))
def test_yaml_block(block: Block, docs: Docs, run_action: Callable[..., Any]) -> None:
    doc = yaml.safe_load(block.body)
    if not (isinstance(doc, list) or (isinstance(doc, dict) and "jobs" in doc)):
        from smsrelay.config import settings_from_file

        assert isinstance(doc, dict) and "provider" in doc, f"{block.where}: not a workflow or config: mark the block"
        path = docs.workspace / f"docs-{block.line}.yaml"
        path.write_text(block.body, encoding="utf-8")
        assert settings_from_file(path, env=docs.env).provider == doc["provider"]
        return
    outputs: dict[str, dict[str, str]] = {}
    ran = 0
    for job, steps, declared in _jobs(doc):
        for step in steps:
            started = re.search(r"smsrelay emulate ([\w-]+)", str(step.get("run", "")))
            if started:  # a step that starts an emulator: the test's own plays it
                outputs[str(step.get("id", ""))] = {"url": docs.emulators[started.group(1)].url}
            if not str(step.get("uses", "")).startswith(("smsrelay/smsrelay@", "./")):
                continue  # the user's own steps (checkout, ./deploy.sh) are theirs
            given = {k: str(v) for k, v in step["with"].items()}
            inputs = {k: docs.local(EXPR.sub(lambda m: _evaluate(m.group(1), outputs), v)) for k, v in given.items()}
            provider = inputs.get("provider", "sandbox")
            api = json.loads(inputs.get("provider-options") or "{}").get("api")
            emu = docs.emulators[
                "kudosity-v1" if api == "v1" else "kudosity-v2" if provider == "kudosity" else provider
            ]
            inputs.setdefault("api-url", emu.url)
            inputs["poll-interval"] = "0.1"  # the docs' 15 s is for the real vendor
            during = _approver(emu, inputs) if inputs.get("wait-for") == "reply" else None
            run = run_action(inputs, files=SAMPLES, timeout=60, during=during)
            assert run.code == 0, f"{block.where}: step {step.get('id', '')} exited {run.code}:\n{run.stdout}"
            outputs[str(step.get("id", ""))] = dict(run.outputs)
            ran += 1
        outputs[job] = {k: EXPR.sub(lambda m: _evaluate(m.group(1), outputs), v) for k, v in declared.items()}
    assert ran, f"{block.where}: no smsrelay step to run"


# -- whole shell sessions ---------------------------------------------------------------------------------
@pytest.mark.parametrize("block", by_kind("bash"))
def test_bash_block(block: Block, docs: Docs) -> None:
    if shutil.which("curl") is None:
        pytest.skip(f"{block.where}: needs curl (apt-get install curl)")
    script = block.body
    for port in set(re.findall(r"--port (\d+)", script)):
        script = script.replace(port, str(_free_port()))
    env = {k: v for k, v in docs.env.items() if not k.startswith("SMSRELAY_KUDOSITY_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    proc = subprocess.Popen(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=docs.workspace,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # so that a failed script's background server goes with it
    )
    try:
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
    assert proc.returncode == 0, f"{block.where} exited {proc.returncode}:\n{stdout}\n{stderr}"
