"""The org emulator's sign-in: the OAuth 2.0 token endpoint (JWT bearer, client credentials),
sessions, and the throwaway TLS and JWT material the tests and ``emulate-org`` use."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import pathlib
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from smsrelay.emulators.base import EmuRequest, EmuResponse, json_response, route
from smsrelay_salesforce.testing.store import (
    OrgStore,
)

log = logging.getLogger("smsrelay.salesforce.emulator")

# --------------------------------------------------------------------------- TLS and JWT material


@dataclass(frozen=True)
class TlsFiles:
    """A throwaway CA and a server certificate for loopback HTTPS."""

    ssl_context: ssl.SSLContext
    ca_path: pathlib.Path


def make_tls(directory: str | pathlib.Path, hosts: Sequence[str] = ()) -> TlsFiles:
    """Make a trustme CA, write its PEM to ``directory/ca.pem``, return a server context for loopback.

    The certificate also names ``*.my.salesforce.com`` and ``login.salesforce.com``,
    so clients that route Salesforce host names to the emulator can verify it.
    """
    try:
        import trustme
    except ImportError as exc:  # pragma: no cover - trustme ships with the dev extra
        raise RuntimeError("the org emulator needs trustme for its certificate: pip install trustme") from exc
    d = pathlib.Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA()
    names = ["127.0.0.1", "localhost", "::1", "login.salesforce.com", "test.salesforce.com", "*.my.salesforce.com",
             *hosts]  # fmt: skip
    cert = ca.issue_cert(*names)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(ctx)
    ca_path = d / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    return TlsFiles(ctx, ca_path)


@dataclass(frozen=True)
class JwtCredentials:
    """An RSA key pair and self-signed certificate, as an admin uploads to an External Client App."""

    private_key_path: pathlib.Path
    certificate_path: pathlib.Path
    private_key_pem: bytes
    certificate_pem: bytes


def make_jwt_credentials(directory: str | pathlib.Path) -> JwtCredentials:
    """Generate ``server.key`` and ``server.crt`` in ``directory`` (2048-bit RSA, self-signed)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    d = pathlib.Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "smsrelay-salesforce integration")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_path, cert_path = d / "server.key", d / "server.crt"
    key_path.write_bytes(key_pem)
    key_path.chmod(0o600)
    cert_path.write_bytes(cert_pem)
    return JwtCredentials(key_path, cert_path, key_pem, cert_pem)


class AuthApi(OrgStore):
    """``POST /services/oauth2/token``: JWT bearer and client credentials."""

    # ------------------------------------------------------------------ OAuth
    @route("POST", r"/services/oauth2/token")
    def token(self, req: EmuRequest) -> EmuResponse:
        form = req.form()
        grant = form.get("grant_type", "")
        if grant == "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return self._jwt_bearer(req, form.get("assertion", ""))
        if grant == "client_credentials":
            return self._client_credentials(req, form)
        # Username-password and refresh flows are not offered: SOAP login() is retired, https://developer.salesforce.com/docs/platform/api/guide/api-eol-soap.html.
        return self._oauth_error("unsupported_grant_type", "grant type not supported")

    def _oauth_error(self, error: str, description: str, status: int = 400) -> EmuResponse:
        return json_response({"error": error, "error_description": description}, status)

    def _token_response(self, username: str, req: EmuRequest) -> EmuResponse:
        token = self.issue_token(username)
        user = self._user(username)
        issued = str(int(self.clock.now().timestamp() * 1000))
        # Salesforce Help, "OAuth 2.0 Web Server Flow" token response: ``id`` is the identity URL on
        # the login host (https://login.salesforce.com/id/<org Id>/<user Id>), and ``signature`` is
        # the Base64 HMAC-SHA256, keyed by the consumer secret, of ``id`` and ``issued_at`` concatenated.
        host = req.header("Host") or self.my_domain
        identity = f"https://{host}/id/{self.org_id}/{user['Id'] if user else ''}"
        signature = base64.b64encode(
            hmac.new(self.consumer_secret.encode(), (identity + issued).encode(), hashlib.sha256).digest()
        ).decode()
        return json_response(
            {
                "access_token": token,
                "scope": "api",
                "instance_url": self.url,
                "id": identity,
                "token_type": "Bearer",
                "issued_at": issued,
                "signature": signature,
            }
        )

    def _jwt_bearer(self, req: EmuRequest, assertion: str) -> EmuResponse:
        # OAuth 2.0 JWT Bearer Flow for Server-to-Server Integration (Salesforce Help).
        import jwt

        if self.certificate_pem is None:
            return self._oauth_error("invalid_grant", "no certificate is configured for JWT bearer in this org")
        from cryptography import x509

        try:
            public_key = x509.load_pem_x509_certificate(self.certificate_pem).public_key()
            claims = jwt.decode(
                assertion,
                key=public_key,  # type: ignore[arg-type]
                algorithms=["RS256"],
                options={"verify_exp": False, "verify_aud": False, "verify_iss": False, "verify_signature": True},
            )
        except jwt.InvalidTokenError:
            return self._oauth_error("invalid_grant", "invalid assertion")
        if claims.get("iss") != self.consumer_key:
            return self._oauth_error("invalid_client_id", "client identifier invalid")
        audiences = {
            "https://login.salesforce.com",
            "https://test.salesforce.com",
            f"https://{self.my_domain}",
            self.url,
        }
        aud = claims.get("aud")
        if (aud if isinstance(aud, str) else None) not in audiences:
            return self._oauth_error("invalid_grant", "audience is invalid")
        # simple-salesforce sends exp as a numeric string; Salesforce accepts it.
        try:
            exp = float(claims.get("exp"))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return self._oauth_error("invalid_grant", "expiration is missing or not a number")
        # The signer stamps exp from its real clock, so it is checked against real time, not the emulator's
        # (possibly manual) clock, which only drives record timestamps and session expiry.
        now = datetime.now(UTC).timestamp()
        if exp <= now:
            return self._oauth_error("invalid_grant", "expired authorization code")
        # The flow's docs: exp must be "within 3 minutes" of now. ASSUMPTION: 5 s of leeway for clock skew.
        if exp > now + 180 + 5:
            return self._oauth_error("invalid_grant", "expiration is more than 3 minutes away")
        sub = claims.get("sub")
        if not isinstance(sub, str) or self._user(sub) is None:
            return self._oauth_error("invalid_grant", "user hasn't approved this consumer")
        return self._token_response(sub, req)

    def _client_credentials(self, req: EmuRequest, form: Mapping[str, str]) -> EmuResponse:
        # OAuth 2.0 Client Credentials Flow: only on My Domain, never on login/test.salesforce.com.
        host = (req.header("Host") or "").split(":")[0].lower()
        if host in {"login.salesforce.com", "test.salesforce.com"}:
            return self._oauth_error("unsupported_grant_type", "request not supported on this domain")
        key, secret = form.get("client_id"), form.get("client_secret")
        auth = req.header("Authorization") or ""
        if auth.lower().startswith("basic "):
            try:
                key, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return self._oauth_error("invalid_client", "invalid client credentials")
        ok_key = hmac.compare_digest((key or "").encode(), self.consumer_key.encode())
        ok_secret = hmac.compare_digest((secret or "").encode(), self.consumer_secret.encode())
        if not (ok_key and ok_secret):
            return self._oauth_error("invalid_client", "invalid client credentials")
        return self._token_response(self.username, req)
