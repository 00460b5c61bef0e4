"""The smsrelay CLI as a subprocess: outputs and exit codes, on the sandbox."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest


@pytest.fixture
def run(tmp_path):
    env = {**os.environ, "SMSRELAY_SANDBOX_PATH": str(tmp_path / "sbx.db"), "SMSRELAY_PROVIDER": "sandbox"}
    env.pop("SMSRELAY_CONFIG", None)

    def run(*args: str, **kw) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "smsrelay", *args], env=env, capture_output=True, text=True, timeout=60, **kw
        )

    return run


def test_send_json_and_status(run):
    p = run("send", "+61491570156", "+61491570157", "-m", "Hi {{ who }}", "--var", "who=team", "--json")
    assert p.returncode == 0, p.stderr
    data = json.loads(p.stdout)
    assert [r["status"] for r in data["results"]] == ["queued", "queued"]
    ids = [r["message_id"] for r in data["results"]]
    s = run("status", *ids, "--json")
    assert s.returncode == 0
    assert set(json.loads(s.stdout)) == set(ids)


def test_invalid_number_among_valid_exits_1_and_sends_the_rest(run):
    p = run("send", "+61491570156", "12", "-m", "Hi", "--json")
    assert p.returncode == 1
    results = json.loads(p.stdout)["results"]
    assert [r["status"] for r in results] == ["queued", "rejected"]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["send", "+61491570156", "-m", "Hi {{ name }}"], "'name' is undefined for recipient +61491570156"),
        (["send", "+61491570156", "-m", "x" * 1601], "over sandbox's limit of 1600"),
        (["send", "+61491570156", "-m", "   "], "the message is empty"),
        (["send", "+61491570156"], "no message"),
        (["send", "-m", "hi"], "no recipients"),
        (["send", "+61491570156", "-m", "hi", "--var", "novalue"], "--var takes NAME=VALUE"),
        (["send", "+61491570156", "-m", "hi", "--send-at", "tomorrow"], "--send-at must be an ISO 8601 time"),
        (["send", "+61491570156", "-m", "hi", "--provider", "nope"], "unknown provider 'nope'"),
    ],
)
def test_bad_input_exits_2_and_sends_nothing(run, args, needle):
    p = run(*args)
    assert p.returncode == 2, p.stdout + p.stderr
    assert needle in p.stderr
    events = run("events", "--json")
    assert events.stdout == ""


def test_bad_yaml_config_names_the_line(run, tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("provider: sandbox\nsandbox:\n  sent_after: [\n")
    p = run("send", "+61491570156", "-m", "hi", "--config", str(cfg))
    assert p.returncode == 2
    assert f"{cfg}:4: invalid YAML" in p.stderr or f"{cfg}:3: invalid YAML" in p.stderr


def test_to_file_csv_with_per_row_variables(run, tmp_path):
    f = tmp_path / "team.csv"
    f.write_text("to,name\n+61491570156,Ann\n+61491570157,Bo\n\n")
    p = run("send", "--to-file", str(f), "-m", "Hi {{ name }}", "--json")
    assert p.returncode == 0, p.stderr
    assert len(json.loads(p.stdout)["results"]) == 2
    bad = tmp_path / "bad.csv"
    bad.write_text("name\nAnn\n")
    p = run("send", "--to-file", str(bad), "-m", "Hi")
    assert p.returncode == 2 and "needs a column named one of" in p.stderr


def test_preview_counts_parts_and_encoding(run):
    p = run("preview", "-m", "Héllo 👋 " * 20, "--json")
    assert p.returncode == 0
    data = json.loads(p.stdout)
    assert data["encodings"] == {"UCS-2": 1}
    assert data["parts"] == 3


def test_dry_run_sends_nothing(run):
    p = run("send", "+61491570156", "-m", "hi", "--dry-run", "--json")
    assert p.returncode == 0 and json.loads(p.stdout)["dry_run"] is True
    assert run("events", "--json").stdout == ""


def test_idempotent_key_never_sends_twice(run):
    a = json.loads(run("send", "+61491570156", "-m", "hi", "--key", "deploy-42", "--json").stdout)
    b = json.loads(run("send", "+61491570156", "-m", "hi", "--key", "deploy-42", "--json").stdout)
    assert a["results"][0]["message_id"] == b["results"][0]["message_id"]


def test_events_cursor_and_sandbox_reply(run):
    assert run("sandbox-reply", "+61491570156", "YES").returncode == 0
    p = run("events", "--json")
    kinds = [json.loads(line)["kind"] for line in p.stdout.splitlines()]
    assert kinds == ["reply"]
    cursor = p.stderr.strip().split("cursor: ")[-1]
    again = run("events", "--json", "--since", cursor)
    assert again.stdout == ""


# -- papercuts: a clear error and exit 2, in the words of the flag the user typed ------------


def test_a_garbage_events_cursor_is_a_clear_input_error(run):
    p = run("events", "--since", "garbage")
    assert p.returncode == 2
    assert "error: --since: not a sandbox event cursor" in p.stderr
    assert "Traceback" not in p.stderr


def test_emulate_on_a_busy_port_is_a_clear_input_error(run):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        p = run("emulate", "kudosity-v2", "--port", str(busy.getsockname()[1]))
    assert p.returncode == 2
    assert "error: --port: cannot listen on 127.0.0.1:" in p.stderr
    assert "Traceback" not in p.stderr


def test_emulate_refuses_a_port_out_of_range(run):
    p = run("emulate", "kudosity-v2", "--port", "99999")
    assert p.returncode == 2
    assert "a port is a number from 0 to 65535" in p.stderr


def test_to_is_a_recipient_and_no_flag_is_matched_by_prefix(run):
    p = run("send", "--to", "+61491570156", "--to", "+61491570157", "-m", "hi", "--json")
    assert p.returncode == 0, p.stderr
    assert [r["to"] for r in json.loads(p.stdout)["results"]] == ["+61491570156", "+61491570157"]
    abbreviated = run("send", "--to-f", "team.csv", "-m", "hi")
    assert abbreviated.returncode == 2
    assert "unrecognized arguments: --to-f" in abbreviated.stderr


@pytest.mark.parametrize(
    ("command", "acting", "idle"),
    [
        (["emulate"], ["--host", "--port", "--manual-clock", "--any-key"], ["--provider", "--config", "--json"]),
        (["sandbox-reply"], ["--config"], ["--provider", "--base-url", "--json"]),
        (["balance"], ["--provider", "--config", "--base-url"], ["--json"]),
        (["webhooks", "register"], ["--provider", "--events"], ["--json"]),
        (["devices"], ["--provider", "--json"], []),
    ],
)
def test_help_lists_only_the_options_that_act_there(run, command, acting, idle):
    p = run(*command, "--help")
    assert p.returncode == 0
    for option in acting:
        assert option in p.stdout
    for option in idle:
        assert option not in p.stdout


def smsrelay(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI with these variables on top of the environment (and no config file)."""
    full = {k: v for k, v in {**os.environ, **env}.items() if k != "SMSRELAY_CONFIG"}
    return subprocess.run(
        [sys.executable, "-m", "smsrelay", *args], env=full, capture_output=True, text=True, timeout=60
    )


def test_an_api_key_with_a_newline_is_an_input_error_naming_the_variable():
    env = {"SMSRELAY_KUDOSITY_API_KEY": "k-0123456789\n"}
    p = smsrelay(env, "send", "--provider", "kudosity", "--from", "Acme", "+61491570156", "-m", "hi", "--dry-run")
    assert p.returncode == 2
    assert "SMSRELAY_KUDOSITY_API_KEY" in p.stderr and "line break" in p.stderr
    assert "ValueError" not in p.stderr and "k-0123456789" not in p.stderr


def test_a_missing_sender_says_from_even_in_a_dry_run():
    env = {"SMSRELAY_KUDOSITY_API_KEY": "k-0123456789", "SMSRELAY_KUDOSITY_BASE_URL": "http://127.0.0.1:9"}
    p = smsrelay(env, "send", "--provider", "kudosity", "+61491570156", "-m", "hi", "--dry-run")
    assert p.returncode == 2
    assert "error: --from: kudosity needs a sender, and none was given" in p.stderr


def test_preview_takes_from_and_shows_an_unreachable_number():
    env = {"SMSRELAY_MESMS_API_KEY": "k-0123456789", "SMSRELAY_MESMS_BASE_URL": "http://127.0.0.1:9"}
    p = smsrelay(env, "preview", "--provider", "mesms", "--from", "Acme", "--to", "+61491570156", "-m", "hi", "--json")
    assert p.returncode == 1
    assert json.loads(p.stdout)["rejected"][0]["error"].startswith("mesms reaches only numbers in TH (+66)")


def test_a_placeholder_left_in_the_api_key_is_an_input_error():
    env = {"SMSRELAY_KUDOSITY_API_KEY": "…"}
    p = smsrelay(env, "send", "--provider", "kudosity", "--from", "Acme", "+61491570156", "-m", "hi")
    assert p.returncode == 2
    assert "SMSRELAY_KUDOSITY_API_KEY" in p.stderr and "plain ASCII" in p.stderr
    assert "UnicodeEncodeError" not in p.stderr


def test_track_links_where_the_provider_has_none_names_the_flag():
    env = {"SMSRELAY_KALEYRA_API_KEY": "k-0123456789", "SMSRELAY_KALEYRA_SID": "HXAP0000000000"}
    p = smsrelay(env, "send", "--provider", "kaleyra", "+919812345678", "-m", "hi", "--track-links", "--dry-run")
    assert p.returncode == 2
    assert "error: --track-links: kaleyra does not track links" in p.stderr


def test_emulate_any_key_lets_a_newcomers_own_key_in():
    import requests

    env = {k: v for k, v in os.environ.items() if k != "SMSRELAY_CONFIG"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "smsrelay", "emulate", "smskit", "--any-key"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().split(" listening on ")[1].split()[0]
        own = requests.get(url + "/api/devices", headers={"X-Api-Key": "sk_live_my_own_key_42"}, timeout=10)
        short = requests.get(url + "/api/devices", headers={"X-Api-Key": "short"}, timeout=10)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert (own.status_code, short.status_code) == (200, 401)
