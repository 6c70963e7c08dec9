"""OpenID Connect sign-in per workspace: authorization code flow with PKCE.

Each workspace has its own provider (`OidcProvider`), which is why this is a small client
of our own rather than a settings-driven library: discovery, the authorization redirect
(state, nonce, S256 code challenge kept in the session), the code exchange, and the
id_token checks (RS256 signature against the provider's JWKS, issuer, audience, expiry,
nonce). Nothing secret is logged or put in an error message.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import jwt
from django.core.cache import cache
from django.http import HttpRequest

from identity.models import OidcProvider

SESSION_KEY = "identity_oidc_flows"
FLOW_SECONDS = 600  # time allowed at the provider between the redirect and the callback
MAX_FLOWS = 5  # sign-ins started in other tabs that may still come back
HTTP_TIMEOUT = 5.0
METADATA_CACHE_SECONDS = 600
CLOCK_LEEWAY_SECONDS = 30
ALGORITHMS = ["RS256"]


class OidcError(Exception):
    """A refused SSO sign-in, with a message fit to show and the HTTP status to answer."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True)
class Metadata:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    token_auth_methods: tuple[str, ...]


@dataclass(frozen=True)
class Callback:
    claims: dict[str, Any]
    redirect_to: str


def discover(issuer: str) -> Metadata:
    """The provider's metadata from its discovery document (cached a few minutes)."""
    cache_key = "identity:oidc:meta:" + hashlib.sha256(issuer.encode()).hexdigest()
    doc = cache.get(cache_key)
    if doc is None:
        url = issuer.rstrip("/") + "/.well-known/openid-configuration"
        doc = _get_json(url, what="discovery document")
        cache.set(cache_key, doc, METADATA_CACHE_SECONDS)
    # OpenID Connect Discovery 1.0 §4.3: the document must name exactly this issuer.
    if doc.get("issuer") != issuer:
        raise OidcError("The identity provider's discovery document names another issuer.", 502)
    try:
        return Metadata(
            issuer=doc["issuer"],
            authorization_endpoint=doc["authorization_endpoint"],
            token_endpoint=doc["token_endpoint"],
            jwks_uri=doc["jwks_uri"],
            token_auth_methods=tuple(
                doc.get("token_endpoint_auth_methods_supported", ["client_secret_basic"])
            ),
        )
    except KeyError as missing:
        message = f"The identity provider's discovery document lacks {missing}."
        raise OidcError(message, 502) from None


def authorization_start(
    request: HttpRequest, provider: OidcProvider, *, redirect_uri: str, redirect_to: str
) -> str:
    """Remember a new flow in the session and return the provider's authorization URL."""
    meta = discover(provider.issuer)
    state = secrets.token_urlsafe(32)
    nonce = secrets.token_urlsafe(32)
    verifier = secrets.token_urlsafe(48)
    flows = request.session.get(SESSION_KEY, {})
    flows[state] = {
        "provider": provider.pk,
        "nonce": nonce,
        "verifier": verifier,
        "redirect_uri": redirect_uri,
        "redirect_to": redirect_to,
        "started": time.time(),
    }
    newest = sorted(flows.items(), key=lambda item: item[1]["started"])[-MAX_FLOWS:]
    request.session[SESSION_KEY] = dict(newest)
    params = {
        "response_type": "code",
        "client_id": provider.client_id,
        "redirect_uri": redirect_uri,
        "scope": "openid email profile",
        "state": state,
        "nonce": nonce,
        "code_challenge": _s256(verifier),
        "code_challenge_method": "S256",
    }
    separator = "&" if "?" in meta.authorization_endpoint else "?"
    return meta.authorization_endpoint + separator + urlencode(params)


def callback_complete(request: HttpRequest, provider: OidcProvider) -> Callback:
    """Check the provider's answer, exchange the code and return the id_token's claims."""
    flow = _pop_flow(request, provider, request.GET.get("state", ""))
    if "error" in request.GET:
        error = request.GET.get("error", "")[:100]
        raise OidcError(f"The identity provider did not sign you in ({error}).", 403)
    code = request.GET.get("code", "")
    if not code:
        raise OidcError("The identity provider's answer has no authorization code.")
    meta = discover(provider.issuer)
    tokens = _exchange(meta, provider, code=code, flow=flow)
    claims = id_token_claims(tokens, meta=meta, client_id=provider.client_id, nonce=flow["nonce"])
    return Callback(claims=claims, redirect_to=flow["redirect_to"])


def id_token_claims(
    tokens: dict[str, Any], *, meta: Metadata, client_id: str, nonce: str
) -> dict[str, Any]:
    """Verify the id_token (signature, issuer, audience, expiry, nonce); return its claims."""
    token = tokens.get("id_token")
    if not isinstance(token, str):
        raise OidcError("The identity provider returned no id_token.", 502)
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise OidcError("The id_token is malformed.") from None
    if header.get("alg") not in ALGORITHMS:
        raise OidcError("The id_token is not signed with RS256.")
    key = _signing_key(meta.jwks_uri, header.get("kid"))
    try:
        claims = jwt.decode(
            token,
            key=key,
            algorithms=ALGORITHMS,
            audience=client_id,
            issuer=meta.issuer,
            leeway=CLOCK_LEEWAY_SECONDS,
            options={"require": ["iss", "sub", "aud", "exp", "iat", "nonce"]},
        )
    except jwt.ExpiredSignatureError:
        raise OidcError("The id_token has expired; sign in again.") from None
    except jwt.InvalidAudienceError:
        raise OidcError("The id_token was issued for another client.") from None
    except jwt.InvalidIssuerError:
        raise OidcError("The id_token comes from another issuer.") from None
    except jwt.InvalidSignatureError:
        raise OidcError("The id_token's signature does not verify.") from None
    except jwt.PyJWTError as error:
        raise OidcError(f"The id_token is invalid ({type(error).__name__}).") from None
    audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    if len(audiences) > 1 and claims.get("azp") != client_id:
        raise OidcError("The id_token was issued for another client.")
    if not hmac.compare_digest(str(claims["nonce"]), nonce):
        raise OidcError("The id_token's nonce does not match this sign-in.")
    return claims


def _pop_flow(request: HttpRequest, provider: OidcProvider, state: str) -> dict[str, Any]:
    flows = request.session.get(SESSION_KEY, {})
    flow = flows.pop(state, None) if state else None
    request.session[SESSION_KEY] = flows
    if flow is None or flow["provider"] != provider.pk:
        raise OidcError("This answer does not belong to a sign-in started here (state mismatch).")
    if time.time() - flow["started"] > FLOW_SECONDS:
        raise OidcError("The sign-in took too long; start again.")
    return flow


def _exchange(meta: Metadata, provider: OidcProvider, *, code: str, flow: dict) -> dict:
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": flow["redirect_uri"],
        "code_verifier": flow["verifier"],
    }
    headers = {"Accept": "application/json"}
    if "client_secret_basic" in meta.token_auth_methods:
        # RFC 6749 §2.3.1: form-encode id and secret before the Basic scheme.
        pair = f"{quote(provider.client_id, safe='')}:{quote(provider.client_secret(), safe='')}"
        headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
    else:
        data.update(client_id=provider.client_id, client_secret=provider.client_secret())
    try:
        response = httpx.post(meta.token_endpoint, data=data, headers=headers, timeout=HTTP_TIMEOUT)
    except httpx.HTTPError:
        raise OidcError("The identity provider could not be reached.", 502) from None
    if response.status_code != 200:
        raise OidcError(
            f"The identity provider refused the authorization code (HTTP {response.status_code}).",
            502,
        )
    return _json(response, what="token response")


def _signing_key(jwks_uri: str, kid: str | None) -> Any:
    # A key missing from the cached set may be a freshly rotated one: read the set again once.
    for fresh in (False, True):
        for jwk in _jwks(jwks_uri, fresh=fresh).keys:
            if (kid is None or jwk.key_id == kid) and jwk.key_type == "RSA":
                return jwk.key
    raise OidcError("The id_token is signed with a key the identity provider does not publish.")


def _jwks(jwks_uri: str, *, fresh: bool) -> jwt.PyJWKSet:
    cache_key = "identity:oidc:jwks:" + hashlib.sha256(jwks_uri.encode()).hexdigest()
    doc = None if fresh else cache.get(cache_key)
    if doc is None:
        doc = _get_json(jwks_uri, what="key set")
        cache.set(cache_key, doc, METADATA_CACHE_SECONDS)
    try:
        return jwt.PyJWKSet.from_dict(doc)
    except jwt.PyJWTError:
        raise OidcError("The identity provider's key set holds no usable key.", 502) from None


def _get_json(url: str, *, what: str) -> dict:
    try:
        response = httpx.get(url, headers={"Accept": "application/json"}, timeout=HTTP_TIMEOUT)
    except httpx.HTTPError:
        raise OidcError("The identity provider could not be reached.", 502) from None
    if response.status_code != 200:
        raise OidcError(
            f"The identity provider's {what} is unavailable (HTTP {response.status_code}).", 502
        )
    return _json(response, what=what)


def _json(response: httpx.Response, *, what: str) -> dict:
    try:
        doc = response.json()
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        raise OidcError(f"The identity provider's {what} is not a JSON object.", 502)
    return doc


def _s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")
