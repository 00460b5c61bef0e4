"""A retry after a try killed mid-send (SIGKILL, out of memory, a lost worker) sends nothing twice.

A killed try leaves what a real one leaves: the provider holds what it accepted, the task
state holds the send's key and start but no results (the kill came before they were
written), and a send journal, if the connection has one, holds each key accepted or in
flight. ``KilledStore`` stands in for the kill: it dies, as the process would, on the
write of the results. Then Airflow's retry runs as a fresh operator, and the tests count
the requests the emulators received. Real Airflow connections (``AIRFLOW_CONN_*``), the
operator executed, the ME-SMS, Kudosity V1/V2 and SMSKit emulators over loopback HTTP.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("airflow")
pytestmark = pytest.mark.airflow

from smsrelay_airflow._compat import AirflowException, AirflowFailException  # noqa: E402
from smsrelay_airflow.operators.send import STATE_KEY, SendSmsOperator  # noqa: E402

from smsrelay.emulators.base import Emulator  # noqa: E402
from smsrelay.emulators.mesms import MeSmsEmulator  # noqa: E402
from smsrelay.emulators.smskit import SmsKitEmulator  # noqa: E402
from tests.fixtures.kudosity import SENDER, V1_KEY, V1_SECRET, V2_KEY  # noqa: E402
from tests.fixtures.smskit import SMSKIT_KEY  # noqa: E402
from tests.unit.test_airflow_provider import TI, StateStore, context  # noqa: E402
from tests.unit.test_airflow_routing import connect, routing  # noqa: E402

THAI = ("+66812345001", "+66812345002", "+66812345003")
AUSTRALIAN = ("+61491576001", "+61491576002", "+61491576003")
MESMS_SEND = "/api/v2/sms/send"
BODY = {"message": "Your code is 1234"}


class Killed(BaseException):
    """The task process dying: nothing in the operator catches it."""


class KilledStore(StateStore):
    """A task state store whose first try is killed before it writes the provider's results."""

    def __init__(self) -> None:
        super().__init__()
        self.killed = False

    def set(self, key: str, value: Any, **kw: Any) -> None:
        if "results" in value and not self.killed:
            self.killed = True
            raise Killed
        super().set(key, value, **kw)


@pytest.fixture(autouse=True)
def _no_journal_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SMSRELAY_JOURNAL", raising=False)
    monkeypatch.delenv("SMSRELAY_INBOX", raising=False)


def mesms_conn(monkeypatch: pytest.MonkeyPatch, emu: Emulator, **extra: Any) -> None:
    extra = {"sender": "Acme", **extra}
    conn = {"conn_type": "smsrelay_mesms", "host": emu.url, "password": "test-key", "extra": extra}
    monkeypatch.setenv("AIRFLOW_CONN_SMSRELAY_DEFAULT", json.dumps(conn))


def kudosity_conn(monkeypatch: pytest.MonkeyPatch, emu: Emulator, api: str) -> None:
    key, own = (V1_KEY, {"api_secret": V1_SECRET}) if api == "v1" else (V2_KEY, {"read_lag": 0})
    extra: dict[str, Any] = {"api": api, "sender": SENDER, "timeout": 5, **own}
    conn = {"conn_type": "smsrelay_kudosity", "host": emu.url, "password": key, "extra": extra}
    monkeypatch.setenv("AIRFLOW_CONN_SMSRELAY_DEFAULT", json.dumps(conn))


def killed_try(to: list[Any], **kw: Any) -> KilledStore:
    """Try 1, killed once the provider has answered: the task state has no results."""
    store = KilledStore()
    with pytest.raises(Killed):
        SendSmsOperator(task_id="send", to=to, **(kw or BODY)).execute(context(TI(try_number=1), store))
    assert "results" not in store.data[STATE_KEY]
    return store


def retry(to: list[Any], store: StateStore | None, try_number: int = 2, **kw: Any) -> dict[str, Any]:
    return SendSmsOperator(task_id="send", to=to, **(kw or BODY)).execute(context(TI(try_number=try_number), store))


def results(store: StateStore) -> list[dict[str, Any]]:
    return store.rows()


# -- no journal, a provider that cannot be asked by key: in doubt, with the keys ---------------
@pytest.mark.parametrize("backend", ["mesms", "kudosity-v1"])
def test_a_retry_after_a_killed_try_sends_nothing_and_reports_the_keys_in_doubt(
    monkeypatch: pytest.MonkeyPatch, start_emulator: Any, backend: str
) -> None:
    if backend == "mesms":
        emu = start_emulator("mesms")
        mesms_conn(monkeypatch, emu)
        to, path = list(THAI), MESMS_SEND
    else:
        emu = start_emulator("kudosity-v1", credentials={V1_KEY: V1_SECRET})
        kudosity_conn(monkeypatch, emu, "v1")
        to, path = list(AUSTRALIAN), r"/send-sms\.json"
    store = killed_try(to)
    posts = len(emu.received("POST", path))
    assert posts == 1  # the first try sent every message, in one request

    with pytest.raises(AirflowFailException) as err:
        retry(to, store)

    text = str(err.value)
    assert "3 message(s) may or may not have been accepted by an earlier try" in text
    assert "not sending them again" in text and "'journal'" in text and "SMSRELAY_JOURNAL" in text
    assert not any(n in text for n in to)  # masked: the text lands in the task log
    rows = results(store)
    assert [r["status"] for r in rows] == ["unknown"] * 3 and all(r["key"] in text for r in rows)
    assert len(emu.received("POST", path)) == posts
    # A further retry finds them in doubt in the task state, and sends nothing either.
    with pytest.raises(AirflowFailException, match="3 message"):
        retry(to, store, try_number=3)
    assert len(emu.received("POST", path)) == posts


def test_without_a_task_state_store_any_retry_on_such_a_provider_is_in_doubt(
    monkeypatch: pytest.MonkeyPatch, start_emulator: Any
) -> None:
    emu = start_emulator("mesms")
    mesms_conn(monkeypatch, emu)
    first = retry(list(THAI), None, try_number=1)  # Airflow < 3.3: no task_state_store; a first try sends
    assert first["accepted"] == 3 and len(emu.received("POST", MESMS_SEND)) == 1

    with pytest.raises(AirflowFailException, match=r"3 message\(s\) may or may not"):
        retry(list(THAI), None, try_number=2)
    assert len(emu.received("POST", MESMS_SEND)) == 1


def test_a_cleared_task_state_sends_again(monkeypatch: pytest.MonkeyPatch, start_emulator: Any) -> None:
    emu = start_emulator("mesms")
    mesms_conn(monkeypatch, emu)
    killed_try(list(THAI))
    # The remedy the failure names: after checking the provider's log, clear the state.
    output = retry(list(THAI), StateStore(), try_number=3)
    assert output["accepted"] == 3 and len(emu.received("POST", MESMS_SEND)) == 2


# -- with a journal: the client knows what the killed try sent ---------------------------------
@pytest.mark.parametrize("where", ["extra", "env"])
def test_with_a_journal_a_retry_sends_nothing_and_only_what_was_in_flight_is_in_doubt(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, start_emulator: Any, where: str
) -> None:
    emu: MeSmsEmulator = start_emulator("mesms")
    journal = str(tmp_path / "journal.db")
    if where == "extra":
        mesms_conn(monkeypatch, emu, journal=journal)
    else:
        mesms_conn(monkeypatch, emu)
        monkeypatch.setenv("SMSRELAY_JOURNAL", journal)
    to = [{"to": n, "name": f"C{i}"} for i, n in enumerate(THAI)]  # one body, so one request, each
    # One request is accepted but its answer lost: in flight when the try is killed.
    emu.inject("reset_after", method="POST", path=MESMS_SEND, times=1)
    store = killed_try(to, message_template="Hi {{ name }}")
    assert len(emu.batches) == 3 and len(emu.received("POST", MESMS_SEND)) == 3

    with pytest.raises(AirflowException, match=r"1 message\(s\) may or may not have been accepted") as err:
        retry(to, store, message_template="Hi {{ name }}")

    assert not isinstance(err.value, AirflowFailException)  # the core's AmbiguousSend: retryable
    assert len(emu.received("POST", MESMS_SEND)) == 3  # nothing sent again
    rows = results(store)
    assert Counter(r["status"] for r in rows)["unknown"] == 1
    accepted = [r for r in rows if r["message_id"]]
    assert len(accepted) == 2  # the journal's record of the killed try's answers
    assert {r["message_id"].split(":")[0] for r in accepted} <= set(emu.batches)  # batch uuid:msisdn
    with pytest.raises(AirflowFailException, match=r"1 message\(s\) may or may not") as final:
        retry(to, store, try_number=3, message_template="Hi {{ name }}")
    assert "SMSRELAY_JOURNAL" not in str(final.value)  # it has one: no advice to set it
    assert len(emu.received("POST", MESMS_SEND)) == 3


# -- providers that can tell, or dedupe: unchanged --------------------------------------------
def test_a_provider_asked_by_key_finds_the_killed_trys_messages(
    monkeypatch: pytest.MonkeyPatch, start_emulator: Any
) -> None:
    emu = start_emulator("kudosity-v2", api_keys=(V2_KEY,), sent_after=0, delivered_after=0, reply_after=0)
    kudosity_conn(monkeypatch, emu, "v2")
    store = killed_try(list(AUSTRALIAN), message="Code 77")
    output = retry(list(AUSTRALIAN), store, message="Code 77")
    assert output["accepted"] == 3
    assert len(emu.received("POST", "/v2/sms")) == 3  # one a message, in try 1 only
    assert sorted(output["message_ids"]) == sorted(m["id"] for m in emu.outbound)


def test_a_provider_that_dedupes_the_key_is_sent_it_again_and_answers_the_first(
    monkeypatch: pytest.MonkeyPatch, smskit_emulator: SmsKitEmulator
) -> None:
    conn = {"conn_type": "smsrelay_smskit", "host": smskit_emulator.url, "password": SMSKIT_KEY}
    monkeypatch.setenv("AIRFLOW_CONN_SMSRELAY_DEFAULT", json.dumps(conn))
    store = killed_try(list(AUSTRALIAN), message="Code 88")
    jobs = set(smskit_emulator.jobs)
    output = retry(list(AUSTRALIAN), store, message="Code 88")
    assert sorted(output["message_ids"]) == sorted(jobs) and set(smskit_emulator.jobs) == jobs


# -- a routed connection --------------------------------------------------------------------------
def test_a_routed_retry_after_a_killed_try_holds_back_what_no_account_can_tell(
    monkeypatch: pytest.MonkeyPatch, mesms_emulator: MeSmsEmulator, smskit_emulator: SmsKitEmulator
) -> None:
    connect(monkeypatch, {"routing": routing(mesms_emulator, smskit_emulator)})
    to = [THAI[0], AUSTRALIAN[0]]
    store = killed_try(to, message="hi")
    posts = len(mesms_emulator.received("POST")), len(smskit_emulator.received("POST"))

    with pytest.raises(AirflowFailException, match=r"1 message\(s\) may or may not .*\+668•+001 at th"):
        retry(to, store, message="hi")

    assert (len(mesms_emulator.received("POST")), len(smskit_emulator.received("POST"))) == posts
    thai, australian = results(store)
    assert (thai["status"], thai["account"]) == ("unknown", "th") and thai["key"]
    assert australian is None  # SMSKit dedupes its key: safe to send once the Thai one is settled


def test_a_routed_retry_with_a_journal_gets_back_what_the_killed_try_sent(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, mesms_emulator: MeSmsEmulator, smskit_emulator: SmsKitEmulator
) -> None:
    journal = str(tmp_path / "journal.db")
    connect(monkeypatch, {"routing": routing(mesms_emulator, smskit_emulator), "journal": journal})
    to = [THAI[0], AUSTRALIAN[0]]
    store = killed_try(to, message="hi")
    posts = len(mesms_emulator.received("POST")), len(smskit_emulator.received("POST"))

    output = retry(to, store, message="hi")

    assert output["accepted"] == 2 and [r["account"] for r in output["results"]] == ["th", "phone"]
    assert (len(mesms_emulator.received("POST")), len(smskit_emulator.received("POST"))) == posts


def test_the_journal_extra_goes_to_the_client_with_its_password_masked(tmp_path: Path) -> None:
    from airflow.sdk import Connection
    from airflow.sdk._shared.secrets_masker import redact
    from smsrelay_airflow.hooks.sms import SmsHook

    url = "postgresql://airflow:journal-pw-0123@db/smsrelay"
    extra = json.dumps({"journal": url})
    conn = Connection(conn_id="sms", conn_type="smsrelay_mesms", password="test-key", extra=extra)
    hook = SmsHook(connection=conn, sender="Acme")
    assert hook.journal == url and hook.settings.provider == "mesms"  # not a provider setting: no error
    assert redact(f"journal {url}") == "journal postgresql://airflow:***@db/smsrelay"
    # The hook's argument wins; a path is expanded, and the client opens its journal there.
    path = tmp_path / "journal.db"
    hook = SmsHook(connection=conn, sender="Acme", journal=str(path))
    assert hook.client.journal is not None and path.exists()
    hook.close()
