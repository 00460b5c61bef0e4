"""The V1 callback signature, checked against Kudosity's own construction run under PHP.

Kudosity's sample signature cannot be reproduced (its account secret is not
published), so the oracle is the reference script of https://developers.kudosity.com/docs/validating-webhook-signatures-from-kudosity:
``parse_url`` → ``parse_str`` → ``json_encode`` → ``hash_hmac('sha256', …)``, run
by Debian's php-cli over hypothesis-generated callbacks. The Python verifier must
agree byte for byte, and must refuse a reordered or altered query.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from collections.abc import Iterator
from urllib.parse import quote, quote_plus

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from smsrelay.config import ProviderSettings
from smsrelay.errors import WebhookError
from smsrelay.providers.kudosity import KudosityProvider, php_json_of_query, v1_signature
from smsrelay.webhooks import WebhookRequest

pytestmark = pytest.mark.php

# Kudosity's reference script (the signature page above), as a loop over JSON lines so one
# PHP process serves every example.
ORACLE = r"""<?php
while (($line = fgets(STDIN)) !== false) {
    $in = json_decode($line, true);
    $builturl = $in['url'];
    $query = parse_url($builturl, PHP_URL_QUERY);
    parse_str($query ?? '', $params);
    $json = json_encode($params);
    $sig = $json === false ? null : hash_hmac('sha256', $json, $in['secret']);
    echo json_encode(['json' => $json === false ? null : base64_encode($json), 'sig' => $sig]), "\n";
    flush();
}
"""


class PhpOracle:
    def __init__(self, path: str) -> None:
        self.proc = subprocess.Popen(
            ["php", "-d", "display_errors=stderr", path],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            encoding="utf-8",
        )

    def sign(self, query: str, secret: str) -> tuple[str | None, str | None]:
        assert self.proc.stdin and self.proc.stdout
        url = "https://hooks.example.com/kudosity/dlr?" + query
        self.proc.stdin.write(json.dumps({"url": url, "secret": secret}) + "\n")
        self.proc.stdin.flush()
        out = json.loads(self.proc.stdout.readline())
        raw = out["json"]
        return (base64.b64decode(raw).decode("utf-8") if raw is not None else None), out["sig"]

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait(timeout=10)


@pytest.fixture(scope="module")
def php(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PhpOracle]:
    if shutil.which("php") is None:
        pytest.skip("install Debian's php-cli (apt-get install php-cli) to run the PHP signature oracle")
    script = tmp_path_factory.mktemp("php") / "oracle.php"
    script.write_text(ORACLE)
    oracle = PhpOracle(str(script))
    yield oracle
    oracle.close()


SECRET = "kudosity-api-secret-Ωß/+"

# Values with slashes, quotes, "+" and spaces, percent signs, empties, non-ASCII and emoji.
VALUE_CHARS = st.sampled_from([*"aZ09 /\\\"'+%&=?:;,.-_~[]", "é", "ß", "日本", "😀", "👍🏽", "\u00a0", "\n", "\t"])
values = st.lists(VALUE_CHARS, max_size=12).map("".join) | st.text(max_size=10)
own_keys = st.from_regex(r"[a-z][a-z0-9_. ]{0,6}", fullmatch=True)


def encode(value: str, how: str) -> str:
    if how == "plus":
        return quote_plus(value)  # spaces as "+", as Kudosity's sample URL
    if how == "percent":
        return quote(value, safe="")  # spaces as %20
    # Loose: leaves "/", ":" and "%" raw, so literal and malformed escapes reach the parser.
    return quote(value, safe="/:%@!$'()*,;")


@st.composite
def callbacks(draw: st.DrawFn) -> str:
    own = draw(st.lists(st.tuples(own_keys, values), max_size=3, unique_by=lambda kv: kv[0]))
    dlr = [
        ("message_id", draw(st.integers(1, 10**10)).__str__()),
        ("mobile", "614" + draw(st.from_regex(r"[0-9]{8}", fullmatch=True))),
        ("datetime", draw(st.sampled_from(["2021-04-26 04:18:00", "2026-11-25 23:59:59", ""]))),
        ("status", draw(st.sampled_from(["delivered", "pending", "soft-bounce", "hard-bounce"]))),
        ("user_id", draw(st.sampled_from(["63935", ""]))),
        ("rate", draw(values)),
        ("response", draw(values)),
    ]
    how = draw(st.sampled_from(["plus", "percent", "loose"]))
    return "&".join(f"{quote_plus(k)}={encode(v, how)}" for k, v in [*own, *dlr])


def provider() -> KudosityProvider:
    return KudosityProvider(ProviderSettings("kudosity", api_key="k-123456", api_secret=SECRET, options={"api": "v1"}))


@pytest.mark.slow
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(query=callbacks())
def test_python_agrees_with_php_byte_for_byte(php: PhpOracle, query: str) -> None:
    php_json, php_sig = php.sign(query, SECRET)
    assume(php_json is not None)  # json_encode failed: invalid UTF-8 (tested below)
    assert php_json_of_query(query) == php_json
    assert v1_signature(query, SECRET) == php_sig
    provider().verify_webhook(WebhookRequest("GET", "/dlr", query, {"x-transmitsms-signature": php_sig}))


@pytest.mark.slow
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(query=callbacks(), data=st.data())
def test_reordered_or_altered_query_is_refused(php: PhpOracle, query: str, data: st.DataObject) -> None:
    _, sig = php.sign(query, SECRET)
    assume(sig is not None)
    pairs = query.split("&")
    i, j = data.draw(st.tuples(st.integers(0, len(pairs) - 1), st.integers(0, len(pairs) - 1)))
    swapped = list(pairs)
    swapped[i], swapped[j] = swapped[j], swapped[i]
    altered = query.replace("status=", "status=x", 1)
    for bad in ("&".join(swapped), altered):
        if php.sign(bad, SECRET)[0] == php.sign(query, SECRET)[0]:
            continue  # e.g. swapping two identical pairs: the same JSON, rightly accepted
        with pytest.raises(WebhookError) as info:
            provider().verify_webhook(WebhookRequest("GET", "/dlr", bad, {"x-transmitsms-signature": sig or ""}))
        assert info.value.status_code == 401


@pytest.mark.parametrize(
    "query",
    [
        # The worked example of the signature page, with its real values.
        "message_id=483979011&mobile=61429859724&datetime=2021-04-26+04%3A18%3A00&status=delivered&user_id=63935&rate=10",
        "myparameter=myvalue&message_id=331694668&mobile=61400000001&datetime=2020-05-16 12:10:00&status=delivered",
        "a.b=1&a_b=2&c=%zz&d=%2F%2f&e=&f",
        "list[]=1&list[]=2&map[k]=v&x=1",
        "",
    ],
)
def test_documented_and_edge_queries_match_php(php: PhpOracle, query: str) -> None:
    php_json, php_sig = php.sign(query, SECRET)
    assert php_json_of_query(query) == php_json
    assert v1_signature(query, SECRET) == php_sig


def test_invalid_utf8_cannot_be_signed_and_is_refused(php: PhpOracle) -> None:
    query = "message_id=1&mobile=61400000001&status=delivered&x=%FF"
    assert php.sign(query, SECRET) == (None, None)  # json_encode fails in PHP too
    with pytest.raises(WebhookError) as info:
        provider().verify_webhook(WebhookRequest("GET", "/dlr", query, {"x-transmitsms-signature": "0" * 64}))
    assert info.value.status_code == 401
