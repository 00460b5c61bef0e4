"""The webhook receiver over real HTTP on loopback, with the sandbox's push route."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest
import requests

from smsrelay.config import ProviderSettings
from smsrelay.inbox import SqliteInbox, open_inbox
from smsrelay.model import Delivery, Reply, Status
from smsrelay.receiver import route_for
from tests.fixtures.receiver import SANDBOX_TOKEN, sandbox_push

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def reply(n: int) -> Reply:
    return Reply(f"sbx-r{n}", "sandbox", "+61491570156", T0, f"mo{n}", text=f"reply {n}")


@pytest.fixture
def sandbox_route(tmp_path):
    settings = ProviderSettings("sandbox", webhook_secret=SANDBOX_TOKEN, options={"path": str(tmp_path / "sbx.db")})
    return route_for(settings)


@pytest.fixture
def inbox(tmp_path):
    box = open_inbox(tmp_path / "inbox.db")
    yield box
    box.close()


def post(url: str, body: bytes, token: str | None = SANDBOX_TOKEN, **kw) -> requests.Response:
    headers = {"Content-Type": "application/json", **kw.pop("headers", {})}
    if token is not None:
        headers["X-Smsrelay-Token"] = token
    return requests.post(url, data=body, headers=headers, timeout=10, **kw)


def test_valid_push_is_stored_once_then_acknowledged(start_receiver, sandbox_route, inbox):
    rec = start_receiver([sandbox_route], inbox)
    url = rec.url + "/webhooks/sandbox"
    resp = post(url, sandbox_push(reply(1), reply(2)))
    assert resp.status_code == 200
    assert resp.json() == {"accepted": 2, "duplicates": 0}
    # The provider redelivers: acknowledged again, stored once.
    again = post(url, sandbox_push(reply(2)))
    assert again.json() == {"accepted": 0, "duplicates": 1}
    assert [e.event_id for e in inbox.read("t")] == ["sbx-r1", "sbx-r2"]
    # The token may also come as a URL parameter, on a sub-path (as Kaleyra's /dlr and /mo).
    third = requests.post(f"{url}/dlr?token={SANDBOX_TOKEN}", data=sandbox_push(reply(3)), timeout=10)
    assert third.status_code == 200
    assert inbox.count() == 3


def test_refusals_are_4xx_and_store_nothing(start_receiver, sandbox_route, inbox):
    rec = start_receiver([sandbox_route], inbox, max_body=2000)
    url = rec.url + "/webhooks/sandbox"
    assert post(url, sandbox_push(reply(1)), token="wrong").status_code == 401
    assert post(url, sandbox_push(reply(1)), token=None).status_code == 401
    bad = post(url, b"{not json")
    assert bad.status_code == 400
    assert "JSON" in bad.json()["error"]
    assert post(url, b'{"events": [{"kind": "reply"}]}').status_code == 400
    assert post(rec.url + "/webhooks/nosuch", b"{}").status_code == 404
    assert requests.get(rec.url + "/nothing/here", timeout=10).status_code == 404
    assert requests.delete(url, timeout=10).status_code == 405
    big = b'{"events": [], "pad": "' + b"x" * 5000 + b'"}'
    assert post(url, big).status_code == 413

    def chunks():
        for _ in range(10):
            yield b"x" * 500

    # No Content-Length (chunked): refused once the stream passes the limit.
    assert post(url, chunks()).status_code == 413
    assert inbox.count() == 0
    # Still serving after all that.
    assert post(url, sandbox_push(reply(9))).status_code == 200


def test_health_and_readiness(start_receiver, sandbox_route, inbox):
    rec = start_receiver([sandbox_route], inbox)
    assert requests.get(rec.url + "/healthz", timeout=10).json() == {"status": "ok", "routes": ["sandbox"]}
    assert requests.get(rec.url + "/readyz", timeout=10).status_code == 200


class BrokenInbox(SqliteInbox):
    """A store that is down: the receiver must not acknowledge anything."""

    def append(self, events, *, source=None):
        raise OSError("disk I/O error")

    async def append_async(self, events, *, source=None):
        raise OSError("disk I/O error")

    def ping(self):
        raise OSError("disk I/O error")


def test_store_failure_is_503_so_the_provider_retries(start_receiver, sandbox_route, tmp_path):
    broken = BrokenInbox(tmp_path / "broken.db")
    rec = start_receiver([sandbox_route], broken)
    resp = post(rec.url + "/webhooks/sandbox", sandbox_push(reply(1)))
    assert resp.status_code == 503
    assert requests.get(rec.url + "/readyz", timeout=10).status_code == 503
    broken.close()


def test_rotation_accepts_current_and_previous_secret_only(start_receiver, inbox, tmp_path):
    settings = ProviderSettings(
        "sandbox",
        webhook_secret="new-secret-token-2",
        webhook_secret_previous="old-secret-token-1",
        options={"path": str(tmp_path / "sbx.db")},
    )
    rec = start_receiver([route_for(settings)], inbox)
    url = rec.url + "/webhooks/sandbox"
    assert post(url, sandbox_push(reply(1)), token="new-secret-token-2").status_code == 200
    assert post(url, sandbox_push(reply(2)), token="old-secret-token-1").status_code == 200
    assert post(url, sandbox_push(reply(3)), token="older-secret-token-0").status_code == 401
    assert inbox.count() == 2


def test_logs_are_json_and_never_show_the_token(start_receiver, sandbox_route, inbox, caplog):
    rec = start_receiver([sandbox_route], inbox)
    with caplog.at_level(logging.INFO, logger="smsrelay.receiver"):
        requests.post(f"{rec.url}/webhooks/sandbox?token={SANDBOX_TOKEN}", data=sandbox_push(reply(1)), timeout=10)
        requests.post(f"{rec.url}/webhooks/sandbox?token=guess-{SANDBOX_TOKEN}", data=b"{}", timeout=10)
    lines = [r.getMessage() for r in caplog.records if r.name == "smsrelay.receiver"]
    assert len(lines) == 2
    assert all(SANDBOX_TOKEN not in line for line in lines)
    assert '"status": 200' in lines[0] and '"events": 1' in lines[0]
    assert '"status": 401' in lines[1]


def test_a_late_sent_push_does_not_regress_delivered(start_receiver, sandbox_route, inbox):
    rec = start_receiver([sandbox_route], inbox)

    def dlr(status: Status, second: int) -> Delivery:
        at = T0.replace(second=second)
        return Delivery(f"d-{status.value}", "sandbox", "+61491570156", at, "m1", status=status)

    url = rec.url + "/webhooks/sandbox"
    assert post(url, sandbox_push(dlr(Status.DELIVERED, 5))).status_code == 200
    assert post(url, sandbox_push(dlr(Status.SENT, 2))).status_code == 200
    assert [e.status for e in inbox.read("t")] == [Status.DELIVERED]


def test_kudosity_v1_rotation_accepts_callbacks_signed_with_the_old_api_secret(start_receiver, inbox):
    from smsrelay.providers.kudosity import v1_signature

    settings = ProviderSettings(
        "kudosity",
        api_key="v1-key-0123",
        api_secret="new-api-secret-0123",
        webhook_secret_previous="old-api-secret-0123",
        options={"api": "v1"},
    )
    rec = start_receiver([route_for(settings, "kudosity-v1")], inbox)
    query = "mobile=61491570156&response=YES&response_id=77&message_id=0&datetime_entry=2026-01-01+00:00:00"

    def get(secret: str) -> int:
        sig = v1_signature(query, secret)
        headers = {"x-transmitsms-signature": sig}
        return requests.get(f"{rec.url}/webhooks/kudosity-v1?{query}", headers=headers, timeout=10).status_code

    assert get("new-api-secret-0123") == 200
    assert get("old-api-secret-0123") == 200
    assert get("other-api-secret-0123") == 401
    assert [e.text for e in inbox.read("t")] == ["YES"]


@pytest.mark.postgres
@pytest.mark.slow
def test_two_replicas_on_one_postgres_inbox_store_once_and_a_live_reader_skips_nothing(
    start_receiver, sandbox_route, postgres_url
):
    import threading

    inboxes = [open_inbox(postgres_url) for _ in range(3)]
    replicas = [start_receiver([sandbox_route], box) for box in inboxes[:2]]
    events = [reply(n) for n in range(300)]
    seen: list[str] = []
    writing = threading.Event()
    writing.set()

    def live_reader():
        # Reads and commits while the replicas write: positions must never appear out of order.
        reader = inboxes[2]
        while True:
            still_writing = writing.is_set()
            page = reader.read("live", limit=50)
            seen.extend(e.event_id for e in page)
            reader.commit("live", page.position)
            if not still_writing and not page.more and not len(page):
                return

    def pusher(k: int):
        session = requests.Session()
        for i in range(k, len(events), 6):
            for rec in replicas:  # every event reaches both replicas, as a provider retry might
                resp = session.post(
                    rec.url + "/webhooks/sandbox",
                    data=sandbox_push(events[i]),
                    headers={"X-Smsrelay-Token": SANDBOX_TOKEN},
                    timeout=10,
                )
                assert resp.status_code == 200

    reader = threading.Thread(target=live_reader)
    reader.start()
    pushers = [threading.Thread(target=pusher, args=(k,)) for k in range(6)]
    for t in pushers:
        t.start()
    for t in pushers:
        t.join()
    writing.clear()
    reader.join(30)
    assert inboxes[0].count() == 300
    assert sorted(seen) == sorted(e.event_id for e in events)
    for box in inboxes:
        box.close()


def test_raw_bytes_in_the_query_and_a_client_that_goes_away(start_receiver, sandbox_route, inbox):
    import socket

    rec = start_receiver([sandbox_route], inbox)
    host, port = rec.url.removeprefix("http://").split(":")

    def raw(request: bytes) -> bytes:
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(request)
            sock.shutdown(socket.SHUT_WR)
            return sock.recv(4096)

    answer = raw(b"GET /webhooks/sandbox?token=\xff\xfe HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400")
    # Declares 1,000 bytes, sends 10, then hangs up.
    raw(b"POST /webhooks/sandbox HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n0123456789")
    assert requests.get(rec.url + "/healthz", timeout=10).status_code == 200
    assert inbox.count() == 0
