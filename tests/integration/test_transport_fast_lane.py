"""The transport's keep-alive fast lane sends what requests would send, over loopback."""

from __future__ import annotations

import socket

import pytest

from smsrelay.emulators.base import Emulator, EmuRequest, EmuResponse, json_response, route
from smsrelay.errors import TransportError
from smsrelay.transport import Transport


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
    assert t._pool is not None  # the fast lane is in use
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
    fast = t.request("POST", "/echo", data=form, params=params).json()
    slow = t.session.request("POST", echo.url + "/echo", data=form, params=params).json()
    assert fast == slow
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
    t = Transport(echo.url, provider="echo")
    for _ in range(3):
        assert t.request("GET", "/bye").json() == {"ok": True}
        assert t.request("GET", "/echo", params={"n": 1}).status_code == 200
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


def test_a_proxy_or_credentials_in_the_url_keep_the_requests_path(monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    assert Transport("http://api.example.com", provider="x")._pool is None
    monkeypatch.delenv("HTTP_PROXY")
    assert Transport("https://user:pw@api.example.com", provider="x")._pool is None
    assert Transport("https://api.example.com", provider="x")._pool is not None


def test_the_response_knows_its_request_and_has_an_empty_cookie_jar(echo):
    t = Transport(echo.url, provider="echo", headers={"X-Api-Key": "k1"})
    resp = t.request("POST", "/echo", json={"a": 1})
    assert resp.request.method == "POST" and resp.request.url == echo.url + "/echo"
    assert resp.request.headers["x-api-key"] == "k1" and resp.request.body == b'{"a": 1}'
    assert len(resp.cookies) == 0 and resp.elapsed.total_seconds() >= 0
    t.close()
