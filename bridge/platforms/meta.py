"""Meta's Graph API, shared by Instagram (Facebook Login flavour) and Facebook Pages.

Both platforms log in through Facebook Login, call `graph.facebook.com` with the same versioned
paths and answer errors in the same envelope, so this module holds what they share:

* `GRAPH_VERSION`, the default Graph version; `AURAREELS_GRAPH_VERSION` overrides it;
* `MetaClient`, the Facebook-Login OAuth (dialog on www.facebook.com, code exchange by GET on
  `/oauth/access_token`, then the short-lived -> long-lived exchange with `fb_exchange_token`),
  the Graph calls (every one carries `appsecret_proof`, which apps with "Require App Secret"
  demand), and `map_error` for the Graph error envelope;
* the webhook helpers `verify_subscription` (the `hub.challenge` handshake) and
  `verify_signature` (`X-Hub-Signature-256`), and the webhook hooks both platforms share.

Apps of the Facebook Login for Business kind authorize with a configuration (`config_id`, from
`INSTAGRAM_CONFIG_ID` / `FACEBOOK_CONFIG_ID`) that lists the permissions, instead of `scope`.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar, Mapping

import httpx

from bridge.logs import redact
from bridge.platforms.base import (
    AccountRef,
    CommentTarget,
    EnvSetting,
    PlatformClient,
    TokenSet,
    WebhookEvent,
    retry_after_seconds,
)
from bridge.platforms.errors import (
    PlatformError,
    RateLimited,
    Reauthorize,
    Rejected,
    TokenExpired,
    Transient,
)

# The default Graph version: v26.0 (released 2026-07-29) is the newest Meta's changelog lists on
# 2026-12-03, and Meta keeps a version about two years. AURAREELS_GRAPH_VERSION overrides it.
GRAPH_VERSION = "v26.0"
GRAPH_VERSION_SETTING = EnvSetting("AURAREELS_GRAPH_VERSION", r"v\d{1,2}\.0", "a Graph API version such as v26.0")

GRAPH = "https://graph.facebook.com"
WWW = "https://www.facebook.com"
RUPLOAD = "https://rupload.facebook.com"
META_HOSTS = ("graph.facebook.com", "www.facebook.com", "rupload.facebook.com")

# error_subcode of code 190 that mean the grant itself is gone (app removed, password changed,
# session invalidated, checkpoint): refreshing cannot help, the creator must log in again.
_GRANT_GONE = {458, 459, 460, 464, 467, 492}
_THROTTLED = {4, 17, 32, 341, 613, 80001, 80002, 80003, 80004, 80005, 80006, 80008, 80014}
_DEFAULT_WAIT = 300.0


# ------------------------------------------------------------------------------------ webhooks
def verify_subscription(params: Mapping[str, str], verify_token: str | None) -> str | None:
    """The `hub.challenge` to echo when Meta's subscription handshake carries our verify token,
    else None (answer 403)."""
    if not verify_token or params.get("hub.mode") != "subscribe":
        return None
    offered = params.get("hub.verify_token") or ""
    if not hmac.compare_digest(offered.encode(), verify_token.encode()):
        return None
    return params.get("hub.challenge")


def verify_signature(app_secret: str | None, header_value: str | None, body: bytes) -> bool:
    """Whether `X-Hub-Signature-256: sha256=<hex>` is the HMAC-SHA256 of the raw body under the
    app secret."""
    if not app_secret or not header_value or not header_value.startswith("sha256="):
        return False
    expected = hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header_value[len("sha256="):].strip().lower())


# ------------------------------------------------------------------------------------- errors
def graph_error(body: Any) -> dict[str, Any] | None:
    """The `error` object of a Graph error envelope, or None."""
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return body["error"]
    return None


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


_TOKENISH = re.compile(r"\b[A-Za-z0-9_\-|]{32,}\b")


def safe_text(text: Any, limit: int = 180) -> str:
    """A platform message fit for a creator: tokens removed (Graph echoes malformed tokens back)."""
    value = _TOKENISH.sub("[redacted]", redact(str(text or ""))).strip()
    return value if len(value) <= limit else value[: limit - 1] + "…"


def usage_wait(response: httpx.Response) -> float | None:
    """Seconds until access returns, from `X-Business-Use-Case-Usage` / `X-App-Usage`
    (`estimated_time_to_regain_access` is in minutes) or `Retry-After`."""
    minutes = []
    for header in ("X-Business-Use-Case-Usage", "X-App-Usage", "X-Page-Usage"):
        raw = response.headers.get(header)
        if not raw:
            continue
        try:
            data = json.loads(raw)
        except ValueError:
            continue
        entries: list[Any] = []
        if isinstance(data, dict) and "estimated_time_to_regain_access" in data:
            entries.append(data)
        elif isinstance(data, dict):
            for value in data.values():
                entries.extend(value if isinstance(value, list) else [value])
        for entry in entries:
            if isinstance(entry, dict) and _int(entry.get("estimated_time_to_regain_access")):
                minutes.append(int(entry["estimated_time_to_regain_access"]))
    if minutes:
        return max(minutes) * 60.0
    return retry_after_seconds(response)


def graph_time(value: Any) -> float:
    """Epoch seconds of a Graph timestamp such as 2024-05-01T12:00:00+0000 (0 if unreadable)."""
    try:
        return datetime.strptime(str(value), "%Y-%m-%dT%H:%M:%S%z").timestamp()
    except ValueError:
        return 0.0


def server_now(response: httpx.Response | None) -> float:
    """The platform's clock from the `Date` header (rolling windows are the platform's), else ours."""
    # An intermediary may add its own Date before the origin's; the origin's comes last.
    dates = response.headers.get_list("Date") if response is not None else []
    raw = dates[-1] if dates else None
    if raw:
        try:
            return parsedate_to_datetime(raw).timestamp()
        except (TypeError, ValueError):
            pass
    return time.time()


# ------------------------------------------------------------------------------------- client
class MetaClient(PlatformClient):
    """Facebook Login and the Graph API; Instagram and Facebook Pages subclass it."""

    hosts = META_HOSTS
    env_settings = (GRAPH_VERSION_SETTING,)
    webhook = "meta"
    # the `object` of the Meta webhook deliveries that are this platform's
    webhook_object: ClassVar[str]
    scope_separator = ","
    # Meta's code exchange is a GET with the client credentials in the query string.
    token_request_format = "query"
    token_request_method = "GET"
    # How long to wait between status polls while Meta processes media (Meta suggests a minute).
    poll_seconds: ClassVar[float] = 30.0
    # the text and creation time of this platform's comment objects (Instagram names them its way)
    comment_text_field: ClassVar[str] = "message"
    comment_time_field: ClassVar[str] = "created_time"

    @property
    def graph_version(self) -> str:
        return self.env(GRAPH_VERSION_SETTING.name) or GRAPH_VERSION

    @property
    def authorize_url(self) -> str:  # type: ignore[override]
        return f"{WWW}/{self.graph_version}/dialog/oauth"

    def authorize_params(self, params: dict[str, str]) -> dict[str, str]:
        # Facebook Login for Business: the configuration names the permissions; `scope` is not sent
        if self.config_id:
            params = {k: v for k, v in params.items() if k != "scope"}
            params["config_id"] = self.config_id
        return params

    @property
    def token_url(self) -> str:  # type: ignore[override]
        return self.graph_url("oauth/access_token")

    def graph_url(self, path: str) -> str:
        return f"{GRAPH}/{self.graph_version}/{path.lstrip('/')}"

    # ------------------------------------------------------------------ OAuth
    def exchange_code(self, code: str, code_verifier: str | None = None) -> TokenSet:
        """Code -> short-lived user token -> long-lived user token (about 60 days)."""
        # Meta's code exchange takes no grant_type; the base's would be ignored, so leave it out.
        short = self.parse_token_response(self._token_request({"code": code, "redirect_uri": self.redirect_uri}))
        tokens = self.exchange_long_lived(short.access_token)
        tokens.scope = ",".join(self.granted_permissions(tokens.access_token)) or None
        return tokens

    def exchange_long_lived(self, token: str) -> TokenSet:
        """Short-lived -> long-lived user token (about 60 days). Meta has no refresh grant and
        does not document a re-exchange as extending a long-lived token, so no refresh token is
        kept: both platforms publish with Page tokens made from this one, which do not expire."""
        body = self._token_request({"grant_type": "fb_exchange_token", "fb_exchange_token": token})
        tokens = self.parse_token_response(body)
        tokens.refresh_token = None
        return tokens

    def refresh(self, refresh_token: str) -> TokenSet:
        """Accounts connected before Page tokens were used hold a long-lived user token as their
        "refresh token"; Meta documents no way to extend it, so they connect once more."""
        raise Reauthorize(f"{self.display_name} now publishes with your Facebook Page's token, which does not "
                          f"expire; connect the account again once to switch to it.", platform=self.name,
                          code="login_expired")

    def revoke(self, account: AccountRef) -> bool:
        """Remove the app's permissions for the Meta user behind the account. This ends the whole
        login: every Page and Instagram account connected through it stops working."""
        user_id = account.metadata.get("user_id")
        if user_id and self.client_id and self.client_secret:
            # The app token works even when the user's own token has expired.
            url, token = self.graph_url(f"{user_id}/permissions"), f"{self.client_id}|{self.client_secret}"
        else:
            url, token = self.graph_url("me/permissions"), account.access_token
        response = self.graph_request("DELETE", url, token, idempotent=True)
        if response.status_code < 400:
            return True
        error = graph_error(self._json(response, strict=False)) or {}
        # An already revoked or expired grant is what we wanted.
        return _int(error.get("code")) == 190

    def granted_permissions(self, token: str) -> list[str]:
        body = self.graph_get(token, "me/permissions")
        return [p["permission"] for p in body.get("data", []) if p.get("status") == "granted"]

    # ------------------------------------------------------------------ Graph calls
    @staticmethod
    def auth(token: str) -> dict[str, str]:
        # A header keeps tokens out of URLs (and so out of access logs).
        return {"Authorization": f"Bearer {token}"}

    def appsecret_proof(self, token: str) -> str | None:
        """HMAC-SHA256 of the access token under the app secret, in hex: the proof that a call
        comes from the app's server. An app token (`id|secret`) needs none."""
        if not self.client_secret or "|" in token:
            return None
        return hmac.new(self.client_secret.encode(), token.encode(), hashlib.sha256).hexdigest()

    def graph_request(self, method: str, url: str, token: str, *, params: dict[str, Any] | None = None,
                      **kwargs: Any) -> httpx.Response:
        """Every Graph call goes through here: the token in a header, the proof in the query."""
        proof = self.appsecret_proof(token)
        params = {**(params or {}), **({"appsecret_proof": proof} if proof else {})}
        headers = {**self.auth(token), **kwargs.pop("headers", {})}
        # merged into the URL's own query (a `paging.next` URL carries its cursor there); httpx's
        # `params` would replace it
        target = str(httpx.URL(url).copy_merge_params(params))
        return self.http.request(method, target, headers=headers, **kwargs)

    def graph_get(self, token: str, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """GET a Graph path (relative, or an absolute `paging.next` URL); raises the mapped error."""
        url = path if path.startswith("https://") else self.graph_url(path)
        response = self.graph_request("GET", url, token, params=params)
        self.raise_for(response)
        return self._json(response)

    def graph_post(self, token: str, path: str, data: dict[str, Any], *, effect: bool = True) -> dict[str, Any]:
        """POST form fields. With `effect` (creates something), a 5xx or timeout after sending is
        `UnknownOutcome`."""
        response = self.graph_request("POST", self.graph_url(path), token, data=form_fields(data),
                                      idempotent=not effect)
        self.raise_for(response, sent_effect=effect)
        return self._json(response)

    def graph_list(self, token: str, path: str, params: dict[str, Any], max_pages: int = 10) -> list[dict[str, Any]]:
        """Every item of a paged edge (following `paging.next`, up to `max_pages` pages)."""
        items: list[dict[str, Any]] = []
        body = self.graph_get(token, path, params)
        for _ in range(max_pages):
            items.extend(body.get("data", []))
            following = (body.get("paging") or {}).get("next")
            if not following:
                break
            body = self.graph_get(token, following)
        return items

    # ------------------------------------------------------------------ first comment
    def post_comment(self, account: AccountRef, target: CommentTarget, message: str) -> str:
        """`POST /{object-id}/comments` with `message`, as the account (the Page's token)."""
        body = self.graph_post(account.access_token, f"{target.platform_post_id}/comments", {"message": message})
        return str(body["id"])

    def find_comment(self, account: AccountRef, target: CommentTarget, message: str, since: datetime) -> str | None:
        """The account's comment with this text among the post's newest comments (a post this new
        has few; the text and author identify it, whatever the clocks say)."""
        text, made = self.comment_text_field, self.comment_time_field
        body = self.graph_get(account.access_token, f"{target.platform_post_id}/comments",
                              {"fields": f"id,{text},{made},from", "limit": 100})
        for item in _dicts(body.get("data")):
            author = item["from"].get("id") if isinstance(item.get("from"), dict) else None
            if item.get(text) == message and author in (None, account.account_id):
                return str(item["id"])
        return None

    # ------------------------------------------------------------------ webhooks
    def webhook_signed(self, headers: Any, body: bytes, now: float) -> bool:
        return verify_signature(self.client_secret, headers.get("X-Hub-Signature-256"), body)

    def read_webhook(self, payload: dict[str, Any]) -> WebhookEvent | None:
        """A permission revoked on Meta marks the accounts of the entry for reconnection."""
        if payload.get("object") != self.webhook_object:
            return None
        event = WebhookEvent(name=str(payload.get("object")))
        for entry in _dicts(payload.get("entry")):
            if not isinstance(entry.get("id"), (str, int)):
                continue
            if any(change.get("field") == "permissions" and isinstance(change.get("value"), dict)
                   and change["value"].get("verb") == "revoke" for change in _dicts(entry.get("changes"))):
                event.reconnect.append((str(entry["id"]), "The permission was removed on Meta; connect the account "
                                                         "again."))
        return event

    # ------------------------------------------------------------------ errors
    def map_error(self, response: httpx.Response, body: Any = None) -> PlatformError:
        """Graph error envelope (code / error_subcode) into the taxonomy."""
        if isinstance(body, dict) and isinstance(body.get("debug_info"), dict):
            return self._map_upload_error(response, body["debug_info"])
        error = graph_error(body)
        if error is None:
            return super().map_error(response, body)
        code, sub = _int(error.get("code")), _int(error.get("error_subcode"))
        status = response.status_code
        name = self.display_name
        platform_code = f"{code}/{sub}" if sub else code
        kw = {"platform": self.name, "platform_code": platform_code, "http_status": status}
        reason = safe_text(error.get("error_user_msg") or error.get("message"))

        specific = self.map_specific(code, sub, error, response)
        if specific is not None:
            return specific
        if code == 190 or code == 102:
            if sub in _GRANT_GONE:
                return Reauthorize(f"{name} ended this login (the password changed, the app was removed or the "
                                   f"session was closed); connect the account again.", code="login_revoked", **kw)
            return TokenExpired(f"The {name} login has expired; refreshing it.", code="token_expired", **kw)
        if code == 100 and sub in (36007, 36008, 36009):
            return Reauthorize(f"{name} refused the login code ({reason}); connect the account again.",
                               code="oauth_invalid_grant", **kw)
        if code == 101 or (code == 1 and "client" in str(error.get("message", "")).lower()):
            return Rejected(f"{name} does not accept this site's app credentials; ask the administrator to check "
                            f"the app id and secret.", code="platform_not_configured", **kw)
        if code == 9 and sub == 2207042:
            return RateLimited(f"{name}'s limit of API posts per 24 hours is reached for this account; the post "
                               f"will go out when a slot frees.", code="publish_limit_reached",
                               retry_after=usage_wait(response) or 3600.0, **kw)
        if code == 9007 or sub == 2207027:
            # Not an error of the post: the media is still processing. Wait and ask again.
            return RateLimited(f"{name} is still processing the media; publishing continues when it is ready.",
                               code="media_not_ready", retry_after=self.poll_seconds, **kw)
        if code in _THROTTLED or sub == 1390008:
            return RateLimited(f"{name} is limiting requests for this account; the post continues when it "
                               f"allows.", code="rate_limited", retry_after=usage_wait(response) or _DEFAULT_WAIT,
                               **kw)
        if code == 10 or code == 210 or (code is not None and 200 <= code <= 299):
            return Reauthorize(f"{name} did not grant the permission this needs ({reason}); connect the account "
                               f"again and allow every requested permission.", code="permission_missing", **kw)
        if code == 368 or sub in (1346003, 1404102, 2207051):
            return Rejected(f"{name} blocked this post as possibly abusive or spam; review the content or try "
                            f"later.", code="blocked", **kw)
        if code == 506:
            return Rejected(f"{name} refused a duplicate of the previous post; change the text.",
                            code="duplicate_post", **kw)
        if code in (1, 2) or error.get("is_transient") or status >= 500 or code in (-1, -2):
            return Transient(f"{name} had a temporary problem; it will be tried again.", code="platform_unavailable",
                             **kw)
        if code == 100 and sub == 33:
            return Rejected(f"{name} cannot find this item, or the login may not reach it; check that the account "
                            f"is still connected to it.", code="not_found", **kw)
        return Rejected(f"{name} refused the request: {reason}", code="rejected", **kw)

    def map_specific(self, code: int | None, sub: int | None, error: dict[str, Any],
                     response: httpx.Response) -> PlatformError | None:
        """Platform-specific codes, checked before the shared Graph mapping (hook)."""
        return None

    def _map_upload_error(self, response: httpx.Response, info: dict[str, Any]) -> PlatformError:
        """rupload's own shape: {"debug_info": {"retriable", "type", "message"}}."""
        kind = str(info.get("type") or "")
        kw = {"platform": self.name, "platform_code": kind or None, "http_status": response.status_code}
        if kind == "OffsetInvalidError" or info.get("retriable") or response.status_code >= 500:
            return Transient(f"The upload to {self.display_name} was interrupted; it resumes where it stopped.",
                             code="upload_interrupted", **kw)
        if response.status_code in (401, 403) or kind in ("AuthorizationError", "AuthenticationError"):
            return TokenExpired(f"The {self.display_name} login has expired; refreshing it.", code="token_expired",
                                **kw)
        return Rejected(f"{self.display_name} refused the video upload: {safe_text(info.get('message'))}",
                        code="upload_rejected", **kw)


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def form_fields(data: dict[str, Any]) -> dict[str, str]:
    """Form fields as Graph wants them: booleans as true/false, lists and dicts as JSON."""
    out: dict[str, str] = {}
    for key, value in data.items():
        if value is None:
            continue
        if isinstance(value, bool):
            out[key] = "true" if value else "false"
        elif isinstance(value, (list, dict)):
            out[key] = json.dumps(value, separators=(",", ":"))
        else:
            out[key] = str(value)
    return out
