"""A small OpenID Connect provider for the tests: a real HTTP server in a thread.

It serves discovery, JWKS, authorize and token endpoints with an RSA key made when it
starts, checks the client's credentials, the redirect URI and the PKCE verifier like a real
provider, and can be told to misbehave (wrong nonce, audience, issuer, key, expiry) so the
tests prove the client refuses each.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

KEY_ID = "test-key-1"


def new_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@dataclass
class Tamper:
    """How the next id_tokens deviate from a correct one."""

    nonce: str | None = None
    audience: str | None = None
    issuer: str | None = None
    exp_offset: int = 300
    signing_key: rsa.RSAPrivateKey | None = None


@dataclass
class LocalOidcProvider:
    client_id: str = "codemaestro-test"
    client_secret: str = field(default_factory=lambda: "s3cr3t-" + secrets.token_urlsafe(16))
    key: rsa.RSAPrivateKey = field(default_factory=new_rsa_key)
    person: dict[str, Any] = field(default_factory=dict)
    tamper: Tamper = field(default_factory=Tamper)
    codes: dict[str, dict[str, Any]] = field(default_factory=dict)
    token_requests: list[dict[str, Any]] = field(default_factory=list)
    issuer: str = ""
    _server: ThreadingHTTPServer | None = None

    def start(self) -> LocalOidcProvider:
        provider = self

        class Handler(_Handler):
            oidc = provider

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.issuer = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def reset(self, **person: Any) -> None:
        self.person = {"sub": "sub-" + secrets.token_hex(4), "email_verified": True, **person}
        self.tamper = Tamper()
        self.codes.clear()
        self.token_requests.clear()

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "jwks_uri": f"{self.issuer}/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic"],
            "code_challenge_methods_supported": ["S256"],
        }

    def jwks(self) -> dict[str, Any]:
        public = jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        return {"keys": [{**public, "kid": KEY_ID, "use": "sig", "alg": "RS256"}]}

    def id_token(self, nonce: str) -> str:
        now = int(time.time())
        claims = {
            "iss": self.tamper.issuer or self.issuer,
            "aud": self.tamper.audience or self.client_id,
            "iat": now,
            "exp": now + self.tamper.exp_offset,
            "nonce": self.tamper.nonce or nonce,
            **self.person,
        }
        key = self.tamper.signing_key or self.key
        return jwt.encode(claims, key, algorithm="RS256", headers={"kid": KEY_ID})


class _Handler(BaseHTTPRequestHandler):
    oidc: LocalOidcProvider

    def log_message(self, format: str, *args: Any) -> None:  # quiet test output
        return

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path == "/.well-known/openid-configuration":
            self._json(200, self.oidc.discovery())
        elif url.path == "/jwks":
            self._json(200, self.oidc.jwks())
        elif url.path == "/authorize":
            self._authorize({k: v[0] for k, v in parse_qs(url.query).items()})
        else:
            self._json(404, {"error": "not_found"})

    def do_POST(self) -> None:
        if urlsplit(self.path).path != "/token":
            self._json(404, {"error": "not_found"})
            return
        length = int(self.headers.get("Content-Length", "0"))
        form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
        self.oidc.token_requests.append(form)
        self._token(form)

    def _authorize(self, params: dict[str, str]) -> None:
        required = ("client_id", "redirect_uri", "state", "nonce", "code_challenge")
        if (
            params.get("client_id") != self.oidc.client_id
            or params.get("response_type") != "code"
            or params.get("code_challenge_method") != "S256"
            or not all(params.get(name) for name in required)
            or "openid" not in params.get("scope", "").split()
        ):
            self._json(400, {"error": "invalid_request"})
            return
        code = secrets.token_urlsafe(24)
        self.oidc.codes[code] = params
        query = urlencode({"code": code, "state": params["state"]})
        self.send_response(302)
        self.send_header("Location", f"{params['redirect_uri']}?{query}")
        self.end_headers()

    def _token(self, form: dict[str, str]) -> None:
        if not self._client_authenticated():
            self._json(401, {"error": "invalid_client"})
            return
        grant = self.oidc.codes.pop(form.get("code", ""), None)  # codes are single-use
        verifier = form.get("code_verifier", "")
        challenge = (
            base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
            .decode()
            .rstrip("=")
        )
        if (
            grant is None
            or form.get("grant_type") != "authorization_code"
            or form.get("redirect_uri") != grant["redirect_uri"]
            or challenge != grant["code_challenge"]
        ):
            self._json(400, {"error": "invalid_grant"})
            return
        self._json(
            200,
            {
                "access_token": secrets.token_urlsafe(24),
                "token_type": "Bearer",
                "expires_in": 300,
                "id_token": self.oidc.id_token(grant["nonce"]),
            },
        )

    def _client_authenticated(self) -> bool:
        header = self.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return False
        client_id, _, secret = base64.b64decode(header[6:]).decode().partition(":")
        return (unquote(client_id), unquote(secret)) == (
            self.oidc.client_id,
            self.oidc.client_secret,
        )

    def _json(self, status: int, body: dict[str, Any]) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
