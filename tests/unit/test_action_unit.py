"""The Action's pieces without a subprocess: the runner's file format, inputs, and
the agreement of action.yml, the entrypoint and the Dockerfile."""

from __future__ import annotations

import io
import re
import subprocess

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from action.ids import IdMask, MaskedIdError
from action.inputs import INPUT_NAMES, InputError, parse_duration
from action.main import main
from action.report import mask_number, overall_status
from action.runner import Runner, escape_data, input_env_name
from smsrelay import ReplyWords
from tests.fixtures.action import ACTION_YML, ROOT, action_metadata, parse_runner_file, read_runner_file, runner_env


class RecordingEnv(dict):
    """An environment that remembers which variables the entrypoint asked for."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.read: set[str] = set()

    def get(self, key, default=None):
        self.read.add(key)
        return super().get(key, default)

    def __getitem__(self, key):
        self.read.add(key)
        return super().__getitem__(key)

    def __contains__(self, key):
        self.read.add(key)
        return super().__contains__(key)


# -- action.yml against the code ------------------------------------------------------


def test_input_names_match_action_yml():
    assert list(action_metadata()["inputs"]) == list(INPUT_NAMES)


def test_every_input_is_read_and_every_output_written(tmp_path, monkeypatch):
    """The mismatch that broke twilio-labs/actions-sms (inputs declared, never read) cannot happen."""
    from smsrelay import redaction

    monkeypatch.setattr(redaction, "_secrets", set(redaction._secrets))
    monkeypatch.setattr(redaction, "_pattern", redaction._pattern)
    meta = action_metadata()
    env = RecordingEnv(
        runner_env(tmp_path, {"provider": "sandbox", "to": "+61491570156", "message": "hi", "dry-run": "true"})
    )
    assert main(env=env, out=io.StringIO()) == 0
    read_inputs = {k for k in env.read if k.startswith("INPUT_")}
    assert read_inputs == {input_env_name(name) for name in meta["inputs"]}
    written = parse_runner_file(read_runner_file(env["GITHUB_OUTPUT"]))
    assert set(written) == set(meta["outputs"])


def test_action_yml_runs_the_dockerfile():
    meta = action_metadata()
    # The runner builds with the Dockerfile's folder as the context: the root, where every COPY source is.
    assert meta["runs"] == {"using": "docker", "image": "Dockerfile"}
    assert meta["branding"]["icon"] and meta["branding"]["color"]
    for name, spec in meta["inputs"].items():
        assert spec.get("description"), name
        assert re.fullmatch(r"[a-z][a-z0-9-]*", name), name
    assert meta["inputs"]["fail-on-error"]["default"] == "true"


def test_dockerfile_contract():
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    froms = re.findall(r"^FROM (\S+)", text, re.M)
    assert len(froms) == 2 and all(re.search(r"python:3\.\d+-slim\S*@sha256:[0-9a-f]{64}$", f) for f in froms)
    assert 'ENTRYPOINT ["/opt/venv/bin/python", "-m", "action.main"]' in text
    assert "PYTHONUNBUFFERED=1" in text and "PYTHONSAFEPATH=1" in text
    # The install is the script the tests build their venv with, and nothing else.
    assert re.findall(r"^RUN .*install.*$", text, re.M) == ["RUN python action/install.py /opt/venv"]
    code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#")).lower()
    assert "airflow" not in code and "salesforce" not in code


# -- the runner's file format -------------------------------------------------------------


@given(st.dictionaries(st.from_regex(r"[a-z][a-z0-9-]{0,20}", fullmatch=True), st.text()))
def test_outputs_round_trip_through_the_runner_parser(tmp_path_factory, values):
    path = tmp_path_factory.mktemp("out") / "set_output"
    path.touch()
    Runner({"GITHUB_OUTPUT": str(path)}, io.StringIO()).set_outputs(values)
    assert parse_runner_file(read_runner_file(path)) == values


def test_commands_escape_their_data():
    out = io.StringIO()
    runner = Runner({}, out)
    runner.error("50% done\nnext", title="a: b, c")
    assert out.getvalue() == "::error title=a%3A b%2C c::50%25 done%0Anext\n"
    assert escape_data("\r") == "%0D"


def test_masks_each_line_once_and_skips_trivial_values():
    out = io.StringIO()
    runner = Runner({}, out)
    runner.mask("line-one\nline-two")
    runner.mask("line-one")
    runner.mask("ab")
    assert out.getvalue() == "::add-mask::line-one\n::add-mask::line-two\n"


# -- small pure functions ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"), [("90", 90), ("90s", 90), ("10m", 600), ("1h", 3600), ("1h30m", 5400), ("0.5", 0.5)]
)
def test_durations(text, seconds):
    assert parse_duration(text, "wait-timeout") == seconds


@pytest.mark.parametrize("text", ["", "soon", "-1", "1d", "m"])
def test_bad_durations_name_the_input(text):
    with pytest.raises(InputError) as err:
        parse_duration(text, "wait-timeout")
    assert err.value.input == "wait-timeout"


def test_decide_reject_wins_a_tie():
    """approve-pattern / reject-pattern go to the core's one approval rule, searched as regexes."""
    words = ReplyWords(re.compile(r"yes", re.I), re.compile(r"no\b", re.I))
    assert words.classify("Yes") == "approved"
    assert words.classify("yes... no") == "rejected"
    assert words.classify("later") is None


def test_mask_number_hides_the_middle():
    assert mask_number("+61491570156") == "+614•••••156"
    assert mask_number("+12025550143") == "+120•••••143"
    assert "491570" not in mask_number("+61491570156")


def test_overall_status():
    assert overall_status(["delivered", "delivered"]) == "delivered"
    assert overall_status(["queued", "delivered"]) == "queued"
    assert overall_status(["delivered", "expired", "failed"]) == "expired"
    assert overall_status([]) == "none"


# -- masked message ids ---------------------------------------------------------------------


@given(
    st.from_regex(r"[a-f-]{1,36}", fullmatch=True),  # a batch id without digits, so the number is the one run
    st.from_regex(r"[1-9][0-9]{7,14}", fullmatch=True),
    st.text(min_size=1, max_size=20),
)
def test_a_masked_id_reads_back_with_the_same_credentials_only(prefix, digits, key):
    full = f"{prefix}:{digits}"
    shown = IdMask([key]).mask(full, "+" + digits)
    assert digits not in shown.split(":", 1)[1] and "masked-" in shown
    assert IdMask([key]).unmask(shown) == (full, digits)
    with pytest.raises(MaskedIdError):
        IdMask([key + "x"]).unmask(shown)


def test_an_id_without_the_number_is_left_alone():
    ids = IdMask(["k"])
    assert ids.mask("5f0c2a1e-uuid", "+61491570156") == "5f0c2a1e-uuid"
    assert ids.unmask("5f0c2a1e-uuid") == ("5f0c2a1e-uuid", None)
    shown = ids.mask("339683245:61491570156", "+61491570156")
    with pytest.raises(MaskedIdError):
        ids.unmask(shown[:-2])  # cut short


def test_two_numbers_of_one_batch_mask_independently():
    ids = IdMask(["k"])
    a = ids.mask("batch:61491570156", "+61491570156")
    b = ids.mask("batch:61491570157", "+61491570157")
    # SIV-style: different tags, so different key streams; nothing lines up digit for digit.
    assert a[:25] != b[:25]


# -- the release: action.yml pinned to the pushed image ---------------------------------------


def test_the_release_pins_action_yml_to_the_image_digest(tmp_path):
    """Run release.yml's own pin step on a copy of action.yml, as the runner runs a step
    (``bash -e``), and check the result is the same metadata, pulling the image by digest."""
    release = yaml.safe_load((ROOT / ".github" / "workflows" / "release.yml").read_text(encoding="utf-8"))
    [step] = [s for s in release["jobs"]["pin"]["steps"] if s.get("name", "").startswith("Write action.yml")]
    digest = "sha256:" + "ab" * 32
    reference = f"docker://ghcr.io/acme/smsrelay-action@{digest}"
    (tmp_path / "action.yml").write_bytes(ACTION_YML.read_bytes())
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    done = subprocess.run(
        ["bash", "-e", "-c", step["run"]],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "REFERENCE": reference},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    pinned = yaml.safe_load((tmp_path / "action.yml").read_text(encoding="utf-8"))
    assert pinned["runs"] == {"using": "docker", "image": reference}
    assert {k: v for k, v in pinned.items() if k != "runs"} == {
        k: v for k, v in action_metadata().items() if k != "runs"
    }


def test_approval_code_is_offered_in_the_message_and_stable_per_ref(in_process):
    """approval-code: the question carries a code derived from message-ref (the same on a retry)."""
    from smsrelay import gate_code

    gate = {"provider": "sandbox", "to": "+61491570156", "message": "Deploy?", "wait-for": "reply"}
    code, log, _ = in_process(gate | {"approval-code": "true", "message-ref": "deploy-42", "dry-run": "true"})
    assert code == 0, log
    shown = gate_code("deploy-42")
    assert f"Deploy?\\nReply YES {shown} or NO {shown}" in log
    placed = gate | {"message": "Go {{ approval_code }}?", "approve-pattern": "^go", "message-ref": "deploy-42"}
    code, log, _ = in_process(placed | {"approval-code": "true", "dry-run": "true"})
    assert code == 0 and f'"body": "Go {shown}?"' in log
    own_words = gate | {"approve-pattern": "^ship", "message-ref": "deploy-42", "approval-code": "true"}
    code, log, _ = in_process(own_words | {"dry-run": "true"})
    assert code == 0 and f"Deploy?\\nInclude {shown} in your reply" in log


def test_approval_code_needs_a_reply_gate(in_process):
    code, log, _ = in_process({"provider": "sandbox", "to": "+61491570156", "message": "hi", "approval-code": "true"})
    assert code == 2 and "approval-code" in log and "wait-for: reply" in log
