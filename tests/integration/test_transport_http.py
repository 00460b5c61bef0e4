"""The transport's one HTTP stack (a pooled ``requests.Session``) over loopback.

What a user relies on: bodies, headers and auth arrive as sent; redirects are
followed; a kept-alive connection the server closed is not reused; a refused
connection counts as never sent (safe to repeat); proxies from the environment apply.
"""

from __future__ import annotations

import socket

import pytest
import requests

from smsrelay.emulators.base import Emulator, EmuRequest, EmuResponse, json_response, route
from smsrelay.errors import TransportError
from smsrelay.transport import RetryPolicy, Transport


class Echo(Emulator):
    """Answers every call with what it received; a few routes redirect or close."""

    name = "echo"

    @route("POST", r"/echo")
    def echo(self, req: EmuRequest) -> EmuResponse:
        return json_response({"query": req.query, "body": req.body.decode(), "method": req.method})

    @route("GET", r"/echo")
    def echo_get(self, req: EmuRequest) -> EmuResponse:
        return json_response({"query": req.query, "body": req.body.decode(), "method": req.method})

    @route("POST", r"/moved")
    def moved(self, req: EmuRequest) -> EmuResponse:
        return EmuResponse(307, b"", {"Location": "/echo?from=moved"})

    @route("POST", r"/see-other")
    def see_other(self, req: EmuRequest) -> EmuResponse:
        return EmuResponse(303, b"", {"Location": "/echo?from=303"})

    @route("GET", r"/bye")
    def bye(self, req: EmuRequest) -> EmuResponse:
        return json_response({"ok": True}, headers={"Connection": "close"})


@pytest.fixture
def echo(start_emulator) -> Emulator:
    return start_emulator(Echo)


def test_json_headers_and_basic_auth_arrive_as_requests_sends_them(echo):
    t = Transport(echo.url, provider="echo", headers={"X-Api-Key": "k1"}, auth=("user", "pw"))
    resp = t.request("POST", "/echo", json={"to": "+61491570156", "text": "héllo"}, headers={"X-Extra": "1"})
    assert resp.status_code == 200 and resp.json()["method"] == "POST"
    assert resp.headers["content-type"] == "application/json"
    got = echo.requests[-1]
    assert got.json() == {"to": "+61491570156", "text": "héllo"}
    assert got.header("Content-Type") == "application/json"
    assert got.header("X-Api-Key") == "k1" and got.header("X-Extra") == "1"
    assert got.header("Authorization") == "Basic dXNlcjpwdw=="
    assert got.header("User-Agent") == "smsrelay"
    t.close()


def test_form_bodies_and_params_are_encoded_exactly_as_requests_does(echo):
    t = Transport(echo.url, provider="echo")
    form = {"to": "+61491570156,+61491570157", "message": "a&b = ünï"}
    params = {"after": "c/1 2", "limit": 10}
    got = t.request("POST", "/echo", data=form, params=params).json()
    with requests.Session() as plain:
        expected = plain.request("POST", echo.url + "/echo", data=form, params=params, timeout=10).json()
    assert got == expected
    assert got["body"] == "to=%2B61491570156%2C%2B61491570157&message=a%26b+%3D+%C3%BCn%C3%AF"
    assert echo.requests[-2].header("Content-Type") == "application/x-www-form-urlencoded"
    t.close()


def test_redirects_are_followed_like_requests(echo):
    t = Transport(echo.url, provider="echo")
    resp = t.request("POST", "/moved", json={"a": 1})
    assert resp.json() == {"query": "from=moved", "body": '{"a": 1}', "method": "POST"}
    assert [r.status_code for r in resp.history] == [307]
    assert t.request("POST", "/see-other", json={"a": 1}).json()["method"] == "GET"
    t.close()


def test_a_connection_the_server_closed_is_not_reused(echo):
    t = Transport(echo.url, provider="echo", retry=RetryPolicy(attempts=1))  # no retry hides a reuse
    for _ in range(3):
        assert t.request("GET", "/bye").json() == {"ok": True}
        assert t.request("GET", "/echo", params={"n": 1}).status_code == 200
    assert t.requests_made == 6
    t.close()


def test_kept_alive_connections_are_reused_across_requests(echo):
    t = Transport(echo.url, provider="echo")
    for i in range(5):
        assert t.request("POST", "/echo", json={"i": i}).status_code == 200
    pools = t.session.get_adapter(echo.url).poolmanager.pools
    # urllib3's pool container refuses iteration; keys() is its snapshot.
    assert [pools[key].num_connections for key in pools.keys()] == [1]  # noqa: SIM118 (five requests, one connection)
    t.close()


def test_a_refused_connection_was_never_sent():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t = Transport(f"http://127.0.0.1:{port}", provider="echo")
    t.retry = t.retry.__class__(attempts=1)
    with pytest.raises(TransportError) as info:
        t.request("POST", "/echo", json={})
    assert info.value.request_sent is False
    assert "ConnectionError" in str(info.value)


def test_a_read_timeout_after_the_request_was_written_counts_as_sent():
    # A listener that accepts and never answers: the request is written, the read times out.
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        t = Transport(f"http://127.0.0.1:{server.getsockname()[1]}", provider="echo", timeout=(1.0, 0.05))
        t.retry = RetryPolicy(attempts=1)
        with pytest.raises(TransportError) as info:
            t.request("POST", "/echo", json={})
        t.close()
    assert info.value.request_sent is True
    assert "ReadTimeout" in str(info.value)


def test_a_proxy_from_the_environment_carries_the_request(monkeypatch, echo):
    # The echo emulator stands in for the proxy: a proxied request names the absolute URL.
    monkeypatch.setenv("HTTP_PROXY", echo.url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    t = Transport("http://api.example.invalid", provider="x")  # .invalid never resolves: only a proxy reaches it
    assert t.request("GET", "/echo", params={"via": "proxy"}).json()["query"] == "via=proxy"
    assert echo.requests[-1].header("Host") == "api.example.invalid"
    t.close()


def test_the_response_knows_its_request_and_has_an_empty_cookie_jar(echo):
    t = Transport(echo.url, provider="echo", headers={"X-Api-Key": "k1"})
    resp = t.request("POST", "/echo", json={"a": 1})
    assert resp.request.method == "POST" and resp.request.url == echo.url + "/echo"
    assert resp.request.headers["x-api-key"] == "k1" and resp.request.body == b'{"a": 1}'
    assert len(resp.cookies) == 0 and resp.elapsed.total_seconds() >= 0
    t.close()
