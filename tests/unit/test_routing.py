"""The routing config and the route each recipient takes: loading, errors, matching, cheapest first, dry runs."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from smsrelay import ConfigError, Router, Status, load_routing
from smsrelay.cli import main

ROUTES = """\
accounts:
  th: {provider: mesms, api_key: "${MESMS_KEY}", sender: ACME, base_url: "http://127.0.0.1:9", prices: {TH: 0.012}}
  au:
    provider: kudosity
    api: v2
    api_key: kv2-key
    sender: "61481074185"
    base_url: "http://127.0.0.1:9"
    prices: {AU: 0.05, TH: 0.02}
  phone: {provider: smskit, api_key: sk-key, base_url: "http://127.0.0.1:9", prices: {AU: 0.01}}
currency: AUD
routes:
  - match: {tag: otp, country: AU}
    accounts: [au]
  - match: {country: TH}
    accounts: [au, th]
  - match: {prefix: "+6149"}
    accounts: [au, phone]
  - accounts: [au]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "routes.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


@pytest.fixture
def router(tmp_path: Path) -> Router:
    return Router(load_routing(write(tmp_path, ROUTES), env={"MESMS_KEY": "mk"}), env={})


def test_the_config_expands_variables_and_keeps_prices_out_of_the_settings(tmp_path: Path) -> None:
    cfg = load_routing(write(tmp_path, ROUTES), env={"MESMS_KEY": "mesms-secret-1"})
    assert cfg.accounts["th"].api_key == "mesms-secret-1"
    assert "prices" not in cfg.accounts["au"].options
    assert cfg.price("au", "TH") == 0.02 and cfg.price("th", "AU") is None
    assert [r.accounts for r in cfg.routes] == [("au",), ("au", "th"), ("au", "phone"), ("au",)]
    assert "mesms-secret-1" not in repr(cfg)


def test_each_recipient_takes_the_first_matching_route_and_the_cheapest_account(router: Router) -> None:
    numbers = ["+66812345678", "+61491570156", "+61291234567", "+919876543210"]
    routed = router.send(numbers, "Hi", dry_run=True)
    assert [r.to for r in routed.results] == numbers
    # TH: th (0.012) is cheaper than au (0.02); +6149…: phone (0.01) before au (0.05);
    # a Sydney landline misses the prefix and takes the default; so does India.
    assert [r.account for r in routed.results] == ["th", "phone", "au", "au"]
    assert "cheapest account reaching TH" in routed.results[0].reason
    assert "route 4 (default)" in routed.results[2].reason
    assert [r.cost for r in routed.results] == [0.012, 0.01, 0.05, None]
    assert routed.total_cost == pytest.approx(0.072) and routed.unpriced == 1
    assert routed.dry_run and all(r.result.status is Status.QUEUED for r in routed.results)


def test_a_tag_selects_the_routes_that_match_on_it(router: Router) -> None:
    assert router.send("+61491570156", "Code 1", tag="otp", dry_run=True).results[0].account == "au"
    assert router.send("+61491570156", "Code 1", tag="news", dry_run=True).results[0].account == "phone"


def test_an_account_that_cannot_reach_the_number_is_a_refusal_before_any_request(tmp_path: Path) -> None:
    config = """\
    accounts:
      th: {provider: mesms, api_key: k, sender: ACME, base_url: "http://127.0.0.1:9"}
      au: {provider: kudosity, api: v2, api_key: k, sender: "61481074185", base_url: "http://127.0.0.1:9"}
    routes:
      - accounts: [th, au]
    """
    with Router(load_routing(write(tmp_path, config), env={}), env={}) as router:
        [item] = router.send("+61491570156", "Hi", dry_run=True).results
    assert item.account == "au"
    [refusal] = item.refusals
    assert refusal.account == "th" and "reaches only numbers in TH" in refusal.error
    assert "61491570156" not in refusal.error  # reasons name countries, never the number


def test_no_matching_route_is_a_rejected_result_not_an_error(tmp_path: Path) -> None:
    config = """\
    accounts:
      th: {provider: mesms, api_key: k, sender: ACME}
    routes:
      - match: {country: TH}
        accounts: [th]
    """
    with Router(load_routing(write(tmp_path, config), env={}), env={}) as router:
        routed = router.send(["+61491570156", "+66812345678"], "Hi", dry_run=True)
    assert [r.result.status for r in routed.results] == [Status.REJECTED, Status.QUEUED]
    assert routed.results[0].account is None and "no route" in (routed.results[0].result.error or "")


@pytest.mark.parametrize(
    ("text", "line", "key", "words"),
    [
        ("accounts:\n  a: {provider: sandbox}\nroutes:\n  - accounts: [a, b]\n", 4,
         "routes.0.accounts.1", "no account"),
        ("accounts:\n  a:\n    provider: sandbox\n    sendr: X\nroutes: [{accounts: [a]}]\n", 4,
         "accounts.a.sendr", "unknown"),
        ("accounts:\n  a: {provider: sandbox}\nroutes:\n  - match: {country: XX}\n    accounts: [a]\n", 4,
         "routes.0.match.country", "not a country"),
        ("accounts:\n  a: {provider: sandbox}\nroutes:\n  - match: {region: TH}\n    accounts: [a]\n", 4,
         "routes.0.match.region", "unknown key"),
        ("accounts:\n  a: {provider: sandbox, prices: {TH: cheap}}\nroutes: [{accounts: [a]}]\n", 2,
         "accounts.a.prices.TH", "a price"),
        ("accounts:\n  a: {provider: sandbox}\nroute:\n  - accounts: [a]\n", 3, "route", "unknown key"),
        ("accounts:\n  a: {provider: sandbox, api_key: '${NOT_SET}'}\nroutes: [{accounts: [a]}]\n", 2,
         "accounts.a.api_key", "NOT_SET"),
    ],
)  # fmt: skip
def test_a_bad_routing_file_names_the_file_the_line_and_the_key(
    tmp_path: Path, text: str, line: int, key: str, words: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_routing(path, env={})
    err = info.value
    assert (err.file, err.line, err.field) == (str(path), line, key)
    assert words in str(err) and f"{path}:{line}" in str(err)


def test_cli_dry_run_prints_each_recipient_with_its_account_and_sends_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MESMS_KEY", "mk")
    path = write(tmp_path, ROUTES)
    code = main(["send", "--config", str(path), "--dry-run", "--json", "+66812345678", "+61491570156", "-m", "hi"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert out["dry_run"] is True
    assert [(r["to"], r["account"]) for r in out["results"]] == [("+66812345678", "th"), ("+61491570156", "phone")]
    assert out["total_cost"] == pytest.approx(0.022) and out["currency"] == "AUD"


def test_an_unquoted_variable_in_a_flow_mapping_gets_a_hint_to_quote_it(tmp_path: Path) -> None:
    path = write(tmp_path, "accounts:\n  a: {provider: sandbox, api_key: ${KEY}}\nroutes: [{accounts: [a]}]\n")
    with pytest.raises(ConfigError) as info:
        load_routing(path, env={"KEY": "k"})
    assert info.value.line == 2 and "quote it" in str(info.value)


def test_cli_refuses_a_bad_routing_file_with_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "accounts:\n  a: {provider: sandbox}\nroutes:\n  - accounts: [a, b]\n")
    code = main(["send", "--config", str(path), "--dry-run", "+66812345678", "-m", "hi"])
    err = capsys.readouterr().err
    assert code == 2
    assert f"{path}:4" in err and "routes.0.accounts.1" in err and "no account named 'b'" in err


def test_a_template_error_stops_the_send_before_any_account_sends(router: Router) -> None:
    from smsrelay import TemplateError

    with pytest.raises(TemplateError) as info:
        router.send(["+66812345678", "+61491570156"], "Hi {{ name }}")
    assert "name" in str(info.value)


def test_an_account_without_the_sender_it_needs_is_a_refusal_and_the_next_one_sends(tmp_path: Path) -> None:
    config = """\
    accounts:
      au: {provider: kudosity, api: v2, api_key: k, base_url: "http://127.0.0.1:9"}
      phone: {provider: smskit, api_key: k, base_url: "http://127.0.0.1:9"}
    routes:
      - match: {prefix: "6149"}
        accounts: [au, phone]
    """
    with Router(load_routing(write(tmp_path, config), env={}), env={}) as router:
        [item] = router.send("+61491570156", "Hi", dry_run=True).results
    assert item.account == "phone"
    [refusal] = item.refusals
    assert refusal.account == "au" and "needs a sender" in refusal.error


def test_a_routed_send_refuses_on_doubt_resend(router: Router) -> None:
    # Resending a message in doubt could deliver it twice; through another account, surely.
    with pytest.raises(ConfigError) as info:
        router.send("+61491570156", "Hi", on_doubt="resend")
    assert info.value.field == "on_doubt"


def test_a_plain_settings_file_is_not_a_routing_file(tmp_path: Path) -> None:
    from smsrelay.routing import is_routing_file

    plain = tmp_path / "sms.yaml"
    plain.write_text("provider: sandbox\n", encoding="utf-8")
    assert not is_routing_file(plain)
    assert is_routing_file(write(tmp_path, ROUTES))


def test_what_an_account_cannot_do_for_the_message_is_its_refusal(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from smsrelay import Message

    config = """\
    accounts:
      phone: {provider: smskit, api_key: k, base_url: "http://127.0.0.1:9"}
      au: {provider: kudosity, api: v2, api_key: k, sender: "61481074185", base_url: "http://127.0.0.1:9"}
      th: {provider: mesms, api_key: k, sender: ACME, base_url: "http://127.0.0.1:9"}
    routes:
      - accounts: [phone, au, th]
    """
    with Router(load_routing(write(tmp_path, config), env={}), env={}) as router:
        [tracked] = router.send("+61491570156", Message("https://x.test", track_links=True), dry_run=True).results
        later = Message("Hi", send_at=datetime(2030, 1, 1, tzinfo=UTC))
        [scheduled] = router.send("+66812345678", later, dry_run=True).results
    # th cannot reach AU (refused before any send), phone cannot track links.
    assert tracked.account == "au" and [f.account for f in tracked.refusals] == ["th", "phone"]
    assert "track links" in tracked.refusals[1].error
    assert scheduled.account == "th" and [f.account for f in scheduled.refusals] == ["phone", "au"]


def test_preview_of_a_routing_file_shows_each_recipient_with_its_account_and_cost(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MESMS_KEY", "mk")
    path = write(tmp_path, ROUTES)
    # The accounts' base URLs are a closed port: a preview that made a request would fail.
    code = main(["preview", "--config", str(path), "--json", "+66812345678", "+61491570156", "-m", "hi"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["dry_run"] is True
    assert [(r["to"], r["account"], r["status"]) for r in out["results"]] == [
        ("+66812345678", "th", "queued"),
        ("+61491570156", "phone", "queued"),
    ]
    assert out["results"][1]["reason"].startswith("route 3 (prefix +6149): cheapest account reaching AU")
    code = main(["preview", "--config", str(path), "--tag", "otp", "+61491570156", "+1", "-m", "hi"])
    lines = capsys.readouterr().out.splitlines()
    assert code == 1  # the invalid number is reported, not previewed
    assert lines[0].split()[:2] == ["+61491570156", "au"] and "cost=0.05" in lines[0]
    assert lines[1].startswith("+1 ") and "rejected" in lines[1]
    assert lines[-1] == "1/2 accepted, estimated cost 0.05 AUD (dry run: nothing sent)"


def test_the_inbox_of_a_routing_file_expands_variables_and_stays_out_of_the_repr(tmp_path: Path) -> None:
    text = ROUTES + 'inbox: "postgresql://app:${PG_PASSWORD}@db/smsrelay"\n'
    config = load_routing(write(tmp_path, text), env={"MESMS_KEY": "mk", "PG_PASSWORD": "hunter2"})
    assert config.inbox == "postgresql://app:hunter2@db/smsrelay"
    assert "hunter2" not in repr(config)


def test_a_router_without_an_inbox_reads_no_inbox_and_pumps_nothing(router: Router) -> None:
    assert router.inbox is None
    assert router.pump() == 0
