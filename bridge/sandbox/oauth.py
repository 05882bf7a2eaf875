"""One OAuth 2.0 authorization server for the emulators (the authorization code grant).

An emulator declares its platform's flavour in an `OAuthSpec` (paths, how the client id is named
and authenticated, scope separators, PKCE, token shapes, what a revocation ends) and its numbers
in its configuration (`apps`, `auto_register`, `redirect_uris`, `code_ttl`, `access_token_ttl`,
`refresh_token_ttl`, `issue_refresh_tokens`, `rotate_refresh_tokens`, `withheld_scopes`, ...).
It then gets, written once:

* the authorize endpoint: GET shows the consent page, POST records the decision and redirects
  with a single-use, short-lived code bound to the client, the redirect URI and the PKCE
  challenge;
* the token endpoint: the code exchange (PKCE checked) and the refresh, with rotation (a spent
  refresh token is refused) or without;
* revocation, and the token store its API routes check bearer tokens against (`lookup`).

The server names what went wrong (a `Refusal`: `invalid_client`, `code_used`, `verifier_mismatch`,
...); the emulator says it in its platform's words through one table, `oauth_errors`, or one hook,
`oauth_refusal`. Quirks are small hooks on the emulator (`oauth_user`, `oauth_check`,
`oauth_consented`, `oauth_wants_refresh`, `oauth_answer`, `oauth_code`).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from werkzeug.wrappers import Request, Response

from bridge.sandbox.core import TokenRecord

if TYPE_CHECKING:
    from bridge.sandbox.core import Emulator


@dataclass(frozen=True)
class OAuthSpec:
    """A platform's OAuth 2.0 server, declared."""

    authorize_path: str
    token_path: str
    revoke_path: str | None = None
    host: str | None = None  # the one host the OAuth endpoints answer on (None: any of the emulator's)
    client_param: str = "client_id"
    scope_separator: str = " "
    answer_scope_separator: str | None = None  # the token answer's (None: as requested)
    known_scopes: frozenset[str] | None = None  # None: the emulator's `oauth_known_scopes()`
    client_auth: str = "body"  # body | basic | either
    pkce: str = "optional"  # optional | required
    pkce_methods: tuple[str, ...] = ("S256", "plain")
    pkce_hex: bool = False  # the S256 challenge is the hex SHA-256 of the verifier (TikTok's desktop flow)
    state_required: bool = False
    redirect_https_or_loopback: bool = False  # else any absolute http(s) URL without a fragment
    access_prefix: str = ""
    refresh_prefix: str = ""
    token_bytes: int = 32
    token_type: str = "Bearer"
    refresh_extends: bool = True  # False: a refreshed refresh token ends with the original grant
    replay_revokes: bool = False  # a code used twice revokes what it granted (RFC 6749 4.1.2)
    revoke_needs_client: bool = True
    revoke_unknown_is_error: bool = False
    revoke_ends: str = "grant"  # grant | token | user
    revoke_answer: dict[str, Any] | None = field(default_factory=dict)  # None: an empty body


@dataclass
class Grant:
    """What a user granted a client in one consent; its tokens live and die with it."""

    id: str
    client: str
    user: str
    scopes: list[str]
    refresh_ends: float  # when refresh tokens of this grant stop (inf: never)
    revoked: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


class Refusal(Exception):
    """A named refusal. `where` says how a browser-facing refusal is shown: `page` (before the
    redirect URI is trusted), `redirect` (to the client with `error`), or `json` (API answers)."""

    DEFAULTS: dict[str, tuple[int, str, str, str]] = {
        # name: (status, RFC 6749 error, description, where)
        "invalid_client": (401, "invalid_client", "Client authentication failed.", "json"),
        "unknown_client": (400, "invalid_client", "The client is not registered.", "page"),
        "missing_client": (400, "invalid_request", "The client id is required.", "json"),
        "bad_redirect_uri": (400, "invalid_request", "redirect_uri is not a registered absolute URL.", "page"),
        "missing_param": (400, "invalid_request", "{param} is required.", "json"),
        "bad_param": (400, "invalid_request", "{param} is not valid.", "redirect"),
        "unsupported_response_type": (400, "unsupported_response_type", "response_type must be code.", "redirect"),
        "invalid_scope": (400, "invalid_scope", "scope names an unknown scope.", "redirect"),
        "bad_state": (400, "invalid_request", "state is required (at most 500 characters).", "page"),
        "pkce_required": (400, "invalid_request", "code_challenge is required.", "page"),
        "bad_pkce_method": (400, "invalid_request", "code_challenge_method is not supported.", "redirect"),
        "denied": (400, "access_denied", "The user denied the request.", "redirect"),
        "bad_content_type": (400, "invalid_request", "The body must be application/x-www-form-urlencoded.", "json"),
        "missing_grant_type": (400, "invalid_request", "grant_type is required.", "json"),
        "unsupported_grant_type": (400, "unsupported_grant_type", "grant_type is not supported.", "json"),
        "code_invalid": (400, "invalid_grant", "Authorization code is invalid.", "json"),
        "code_used": (400, "invalid_grant", "Authorization code has been used.", "json"),
        "code_expired": (400, "invalid_grant", "Authorization code is expired.", "json"),
        "redirect_mismatch": (400, "invalid_grant", "redirect_uri does not match the authorization request.", "json"),
        "verifier_missing": (400, "invalid_grant", "code_verifier is required.", "json"),
        "verifier_mismatch": (400, "invalid_grant", "Code verifier or code challenge is invalid.", "json"),
        "refresh_invalid": (400, "invalid_grant", "Refresh token is invalid, expired or revoked.", "json"),
        "token_unknown": (400, "invalid_token", "Token expired or revoked.", "json"),
    }

    def __init__(self, name: str, *, param: str | None = None, state: str | None = None,
                 redirect_uri: str | None = None):
        super().__init__(name)
        self.name = name
        self.param = param  # the parameter at fault, where one is
        self.state = state
        self.redirect_uri = redirect_uri
        self.status, self.error, self.description, self.where = self.DEFAULTS[name]


class OAuthServer:
    """The state and endpoints of one emulator's authorization server."""

    def __init__(self, emulator: "Emulator", spec: OAuthSpec):
        self.emu = emulator
        self.spec = spec
        self.codes: dict[str, dict[str, Any]] = {}
        self.tokens: dict[str, TokenRecord] = {}
        self.grants: dict[str, Grant] = {}

    @property
    def config(self) -> dict[str, Any]:
        return self.emu.config

    # ------------------------------------------------------------------ the store
    def lookup(self, token: str | None) -> tuple[TokenRecord | None, str]:
        """An access token's record and its state: ok | unknown | revoked | expired."""
        record = self.tokens.get(token or "")
        if record is None or record.kind != "access":
            return None, "unknown"
        grant = self.grants.get(record.extra.get("grant", ""))
        if record.revoked or (grant is not None and grant.revoked):
            return record, "revoked"
        if self.emu.now() >= record.expires_at:
            return record, "expired"
        return record, "ok"

    def access(self, token: str | None) -> TokenRecord | None:
        record, state = self.lookup(token)
        return record if state == "ok" else None

    def issue(self, client: str, user: str, scopes: list[str], **extra: Any) -> dict[str, Any]:
        """Tokens as the token endpoint would answer them after a consent (tests use it too)."""
        refresh_ttl = self.config.get("refresh_token_ttl")
        now = self.emu.now()
        grant = Grant(self.emu.new_id("grant-"), client, user, list(scopes),
                      now + refresh_ttl if refresh_ttl else float("inf"), extra=dict(extra))
        self.grants[grant.id] = grant
        refresh = self._refresh_token(grant) if self.emu.oauth_wants_refresh(grant) else None
        return self._answer(grant, refresh, with_refresh=True, exchange=True)

    def revoke_user(self, user: str) -> int:
        """The user removes the app: every grant of theirs ends."""
        ended = [g for g in self.grants.values() if g.user == user and not g.revoked]
        for grant in ended:
            grant.revoked = True
        return len(ended)

    def _refresh_token(self, grant: Grant) -> TokenRecord:
        now = self.emu.now()
        ttl = self.config.get("refresh_token_ttl")
        ends = grant.refresh_ends if not self.spec.refresh_extends else (now + ttl if ttl else float("inf"))
        record = TokenRecord(self.spec.refresh_prefix + secrets.token_urlsafe(self.spec.token_bytes), grant.user,
                             grant.client, list(grant.scopes), ends, kind="refresh",
                             extra={"grant": grant.id, "issued": now})
        self.tokens[record.token] = record
        cap = self.config.get("refresh_tokens_per_user")
        if cap:  # past the per-client, per-user cap the oldest refresh token dies
            live = sorted((t for t in self.tokens.values() if t.kind == "refresh" and not t.revoked
                           and t.user == grant.user and t.client_id == grant.client), key=lambda t: t.extra["issued"])
            for old in live[:max(0, len(live) - cap)]:
                old.revoked = True
        return record

    def _answer(self, grant: Grant, refresh: TokenRecord | None, *, with_refresh: bool,
                exchange: bool = False) -> dict[str, Any]:
        now, ttl = self.emu.now(), self.config["access_token_ttl"]
        access = TokenRecord(self.spec.access_prefix + secrets.token_urlsafe(self.spec.token_bytes), grant.user,
                             grant.client, list(grant.scopes), now + ttl, extra={"grant": grant.id})
        self.tokens[access.token] = access
        separator = self.spec.answer_scope_separator or self.spec.scope_separator
        body: dict[str, Any] = {"access_token": access.token, "token_type": self.spec.token_type,
                                "expires_in": int(ttl), "scope": separator.join(grant.scopes)}
        if refresh is not None and with_refresh:
            body["refresh_token"] = refresh.token
        return self.emu.oauth_answer(body, grant, refresh if with_refresh else None, exchange)

    # ------------------------------------------------------------------ clients and redirects
    def known_app(self, client: str) -> bool:
        apps = self.config["apps"]
        if client in apps:
            return True
        if client and self.config.get("auto_register", True):
            self.config["apps"] = {**apps, client: None}  # held to the secret of its first token call
            return True
        return False

    def _secret_ok(self, client: str, secret: str | None) -> bool:
        if not secret or not self.known_app(client):
            return False
        expected = self.config["apps"].get(client)
        if expected is None:
            self.config["apps"] = {**self.config["apps"], client: secret}
            return True
        return hmac.compare_digest(expected, secret)

    def _redirect_ok(self, uri: str) -> bool:
        registered = self.config.get("redirect_uris")
        if registered:
            return uri in registered
        if self.spec.redirect_https_or_loopback:
            return uri.startswith(("https://", "http://127.0.0.1", "http://localhost"))
        parts = urlsplit(uri)
        return parts.scheme in ("http", "https") and bool(parts.netloc) and not parts.fragment and len(uri) <= 2048

    def authenticate_client(self, request: Request) -> str:
        """The authenticated client of a token, revoke or introspection request (or a refusal)."""
        form, param = request.form, self.spec.client_param
        basic = request.authorization if request.authorization and request.authorization.type == "basic" else None
        if self.spec.client_auth == "basic" or (self.spec.client_auth == "either" and basic):
            if basic is None:
                raise Refusal("invalid_client")
            client, secret = basic.username or "", basic.password or ""
            if form.get(param) and form[param] != client:
                raise Refusal("invalid_client")
        else:
            client, secret = form.get(param) or "", form.get("client_secret")
            if not client:
                raise Refusal("missing_client", param=param)
            if not secret:
                raise Refusal("missing_param", param="client_secret")
        if not self._secret_ok(client, secret):
            raise Refusal("invalid_client")
        return client

    # ------------------------------------------------------------------ authorize
    def authorize(self, request: Request) -> Response:
        params = {k: v for k, v in request.args.items()}
        if request.method == "POST":
            params.update({k: v for k, v in request.form.items() if k not in ("decision", "sandbox_user")})
        try:
            scopes = self._check_authorize(params)
            if request.method == "GET":
                return self.emu.consent_page(request, app_name=self.config.get("app_name") or
                                             params[self.spec.client_param], scopes=scopes, hidden=params)
            if request.form.get("decision") != "allow":
                raise Refusal("denied", state=params.get("state"), redirect_uri=params["redirect_uri"])
        except Refusal as refusal:
            return self.emu.oauth_refusal(refusal)
        user = self.emu.oauth_user((request.form.get("sandbox_user") or "creator1").strip() or "creator1")
        client = params[self.spec.client_param]
        granted, extra = self.emu.oauth_consented(params, client, user, scopes)
        code = self.emu.oauth_code()
        self.codes[code] = {"client": client, "redirect_uri": params["redirect_uri"], "scopes": granted,
                            "user": user, "challenge": params.get("code_challenge") or None,
                            "method": params.get("code_challenge_method") or "plain",
                            "expires_at": self.emu.now() + self.config["code_ttl"], "used": False, "grant": None,
                            "extra": extra}
        answer = {"code": code, **self.emu.oauth_redirect_extra(granted)}
        if params.get("state"):
            answer["state"] = params["state"]
        return self.emu.redirect(params["redirect_uri"], answer)

    def _check_authorize(self, params: dict[str, str]) -> list[str]:
        spec = self.spec
        client = params.get(spec.client_param, "")
        if not client or not self.known_app(client):
            raise Refusal("unknown_client", param=spec.client_param)
        uri = params.get("redirect_uri", "")
        if not uri or not self._redirect_ok(uri):
            raise Refusal("bad_redirect_uri", param="redirect_uri")
        state = params.get("state")
        trusted = {"state": state, "redirect_uri": uri}
        if params.get("response_type") != "code":
            raise Refusal("unsupported_response_type", param="response_type", **trusted)
        if spec.state_required and (not state or len(state) > 500):
            raise Refusal("bad_state", param="state", **trusted)
        scopes = [s for s in (params.get("scope") or "").split(spec.scope_separator) if s]
        known = spec.known_scopes if spec.known_scopes is not None else self.emu.oauth_known_scopes()
        if not scopes or any(s not in known for s in scopes):
            raise Refusal("invalid_scope", param="scope", **trusted)
        challenge = params.get("code_challenge")
        if spec.pkce == "required" and not challenge:
            raise Refusal("pkce_required", param="code_challenge", **trusted)
        if challenge and (params.get("code_challenge_method") or "plain") not in spec.pkce_methods:
            raise Refusal("bad_pkce_method", param="code_challenge_method", **trusted)
        extra = self.emu.oauth_check(params)
        if extra is not None:
            extra.state, extra.redirect_uri = state, uri
            raise extra
        return scopes

    # ------------------------------------------------------------------ token
    def token(self, request: Request) -> Response:
        try:
            if request.mimetype != "application/x-www-form-urlencoded":
                raise Refusal("bad_content_type")
            client = self.authenticate_client(request)
            grant_type = request.form.get("grant_type")
            if grant_type == "authorization_code":
                return self.emu.json(self._exchange(request.form, client))
            if grant_type == "refresh_token":
                return self.emu.json(self._refresh(request.form, client))
            raise Refusal("unsupported_grant_type" if grant_type else "missing_grant_type", param="grant_type")
        except Refusal as refusal:
            return self.emu.oauth_refusal(refusal)

    def _exchange(self, form, client: str) -> dict[str, Any]:
        required = ("code", "redirect_uri", "code_verifier") if self.spec.pkce == "required" else ("code",
                                                                                                   "redirect_uri")
        for name in required:
            if not form.get(name):
                raise Refusal("missing_param", param=name)
        entry = self.codes.get(form["code"])
        if entry is None or entry["client"] != client:
            raise Refusal("code_invalid")
        if entry["used"]:
            if self.spec.replay_revokes and entry["grant"]:
                self.grants[entry["grant"]].revoked = True
            raise Refusal("code_used")
        if self.emu.now() > entry["expires_at"]:
            raise Refusal("code_expired")
        if form["redirect_uri"] != entry["redirect_uri"]:
            raise Refusal("redirect_mismatch")
        if entry["challenge"]:
            verifier = form.get("code_verifier") or ""
            if not verifier:
                raise Refusal("verifier_missing", param="code_verifier")
            if not hmac.compare_digest(self._derive(verifier, entry["method"]), entry["challenge"]):
                raise Refusal("verifier_mismatch")
        entry["used"] = True
        answer = self.issue(client, entry["user"], entry["scopes"], **entry["extra"])
        entry["grant"] = self.tokens[answer["access_token"]].extra["grant"]
        return answer

    def _derive(self, verifier: str, method: str) -> str:
        if method == "plain":
            return verifier
        digest = hashlib.sha256(verifier.encode())
        if self.spec.pkce_hex:
            return digest.hexdigest()
        return base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()

    def _refresh(self, form, client: str) -> dict[str, Any]:
        token = form.get("refresh_token")
        if not token:
            raise Refusal("missing_param", param="refresh_token")
        record = self.tokens.get(token)
        grant = self.grants.get(record.extra.get("grant", "")) if record else None
        if (record is None or record.kind != "refresh" or record.revoked or grant is None or grant.revoked
                or record.client_id != client or self.emu.now() >= record.expires_at):
            raise Refusal("refresh_invalid")
        if self.config.get("rotate_refresh_tokens", True):
            record.revoked = True  # rotated: this one is spent
            return self._answer(grant, self._refresh_token(grant), with_refresh=True)
        repeat = self.config.get("refresh_returns_refresh_token", True)
        return self._answer(grant, record, with_refresh=repeat)

    # ------------------------------------------------------------------ revoke
    def revoke(self, request: Request) -> Response:
        if not self.config.get("revoke_endpoint", True):
            return self.emu.not_found(request)
        try:
            if request.mimetype != "application/x-www-form-urlencoded" and self.spec.revoke_needs_client:
                raise Refusal("bad_content_type")
            client = self.authenticate_client(request) if self.spec.revoke_needs_client else None
            token = request.form.get("token") or request.args.get("token")
            if not token:
                raise Refusal("missing_param", param="token")
            record = self.tokens.get(token)
            grant = self.grants.get(record.extra.get("grant", "")) if record else None
            if record is None or (client is not None and record.client_id != client) or record.revoked or (
                    grant is not None and grant.revoked):
                if self.spec.revoke_unknown_is_error:
                    raise Refusal("token_unknown")
            elif self.spec.revoke_ends == "token":
                record.revoked = True
            elif self.spec.revoke_ends == "user":
                self.revoke_user(record.user)
            elif grant is not None:
                grant.revoked = True
        except Refusal as refusal:
            return self.emu.oauth_refusal(refusal)
        answer = self.spec.revoke_answer
        return self.emu.json(answer) if answer is not None else Response("", status=200)
