"""Connecting accounts: OAuth state, the callback, pending links, token refresh, disconnect, quota.

The OAuth state is random, single-use, bound to the user and the platform, lives 10 minutes and
is kept in Redis with the PKCE verifier. The callback needs no login (the platform sends the
browser), so it does not attach the account it finds: it keeps a pending link (the login's
profiles and tokens, encrypted, in Redis for 15 minutes) and sends the browser to the dashboard
with the link's id; the dashboard confirms it with its user's JWT and the account is attached only
when that user is the one who called connect. Otherwise an attacker could start a connect, send
the consent link to a creator, and receive the creator's account once the creator approves.
`AURAREELS_OAUTH_CONFIRM=0` attaches at the callback, as the seed did.

A refresh holds the account's row lock (SELECT ... FOR UPDATE) for the platform call, so of many
workers that find a token near expiry exactly one spends the (single-use, rotating) refresh token
and the others read its result; the new access and refresh tokens are written in the same
transaction.
"""
from __future__ import annotations

import json
import logging
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlencode

from sqlalchemy import and_, insert, select, update
from sqlalchemy.exc import IntegrityError, OperationalError

from bridge.crypto import VaultError
from bridge.errors import ApiError, Conflict, NotFound
from bridge.platforms.base import AccountProfile, AccountRef, TokenSet
from bridge.platforms.errors import PlatformError, RateLimited, Reauthorize, Transient
from bridge.platforms.registry import REGISTRY, get_client
from bridge.runtime import Runtime
from bridge.store.accounts import mark_needs_reconnect
from bridge.store.db import utcnow

log = logging.getLogger(__name__)

STATE_TTL = 600
LINK_TTL = 900
REFRESH_EARLY = timedelta(hours=24)
_LINK_ID = re.compile(r"[A-Za-z0-9_-]{20,100}")

# What the dashboard is told when a connect fails: a fixed sentence per error code. Text the
# platform (or whoever crafted the callback URL) sent, such as `error_description`, never reaches
# the dashboard's address bar.
DECLINED = "You declined the connection."
_CALLBACK_ERRORS = {
    "access_denied": DECLINED,
    "user_denied": DECLINED,
    "user_cancelled_login": DECLINED,
    "user_cancelled_authorize": DECLINED,
    "consent_required": DECLINED,
    "invalid_scope": "The platform did not grant the permissions the bridge needs; connect again and allow all of them.",
    "login_required": "Sign in on the platform, then connect again.",
    "interaction_required": "Sign in on the platform, then connect again.",
    "server_error": "The platform could not complete the sign-in right now; try again in a moment.",
    "temporarily_unavailable": "The platform could not complete the sign-in right now; try again in a moment.",
}
_CALLBACK_ERROR_DEFAULT = "The platform refused the connection; start connecting again."
_CONNECT_FAILURES = {
    "oauth_invalid_grant": "The platform did not accept the sign-in; start connecting again.",
    "oauth_error": "The platform refused the sign-in; start connecting again.",
    "oauth_unavailable": "The platform could not complete the sign-in right now; try again in a moment.",
    "rate_limited": "The platform is limiting sign-ins right now; try again in a few minutes.",
    "permission_missing": "A permission the bridge needs was not granted; connect again and allow every requested "
                          "permission.",
    "no_instagram_business_account": "No Instagram professional account linked to a Facebook Page was found in this "
                                     "login; link one in the Instagram app, then connect again.",
    "platform_not_configured": "This platform is not configured on this site; ask the administrator.",
}
_CONNECT_FAILURE_DEFAULT = "The connection could not be completed; start connecting again."


@dataclass
class CallbackResult:
    ok: bool
    platform: str
    message: str = ""
    accounts: int = 0
    link: str | None = None  # a pending link the dashboard confirms (AURAREELS_OAUTH_CONFIRM=1)


def _state_key(state: str) -> str:
    return f"bridge:oauth:state:{state}"


def _link_key(link: str) -> str:
    return f"bridge:oauth:link:{link}"


def _client(rt: Runtime, platform: str):
    if platform not in REGISTRY:
        raise NotFound(f"'{platform}' is not a supported platform.", code="unknown_platform")
    return get_client(rt.settings, platform)


def start_connect(rt: Runtime, user_id: int, platform: str) -> dict:
    client = _client(rt, platform)
    try:
        client.require_credentials()
    except PlatformError as exc:
        raise ApiError(exc.message, status=503, code="platform_not_configured") from None
    state = secrets.token_urlsafe(32)
    verifier, challenge = client.new_pkce()
    rt.redis.set(_state_key(state), json.dumps({"user_id": user_id, "platform": platform, "verifier": verifier}),
                 ex=STATE_TTL)
    return {"success": True, "auth_url": client.authorization_url(state, challenge), "state": state}


def frontend_redirect(rt: Runtime, result: CallbackResult) -> str:
    base = f"{rt.settings.frontend_url}/dashboard/social-accounts"
    if result.ok and result.link:
        return f"{base}?{urlencode({'status': 'pending', 'platform': result.platform, 'link': result.link})}"
    if result.ok:
        return f"{base}?{urlencode({'status': 'success', 'platform': result.platform})}"
    return f"{base}?{urlencode({'status': 'error', 'platform': result.platform, 'message': result.message})}"


def finish_connect(rt: Runtime, platform: str, params: dict[str, str]) -> CallbackResult:
    """Handle the platform's redirect. Never raises: every outcome is a redirect for the browser."""
    state = params.get("state") or ""
    if platform not in REGISTRY:
        return CallbackResult(False, platform, "Unknown platform.")
    if not state:
        return CallbackResult(False, platform, "The sign-in link is missing its security check; start again.")
    # Single use: GETDEL takes the state out whatever happens next.
    raw = rt.redis.getdel(_state_key(state))
    if raw is None:
        return CallbackResult(False, platform, "The sign-in link has expired or was already used; start again.")
    saved = json.loads(raw)
    if saved.get("platform") != platform:
        return CallbackResult(False, platform, "The sign-in link belongs to another platform; start again.")
    if params.get("error"):
        log.info("connect %s: the platform answered with an error", platform, extra={"platform": platform})
        return CallbackResult(False, platform, _CALLBACK_ERRORS.get(params["error"], _CALLBACK_ERROR_DEFAULT))
    code = params.get("code")
    if not code:
        return CallbackResult(False, platform, "The platform sent no authorization code; start again.")
    client = get_client(rt.settings, platform)
    try:
        tokens = client.exchange_code(code, saved.get("verifier"))
        profiles = client.fetch_accounts(tokens)
    except PlatformError as exc:
        log.warning("connect %s failed: %s", platform, exc.code, extra={"platform": platform})
        return CallbackResult(False, platform, _CONNECT_FAILURES.get(exc.code, _CONNECT_FAILURE_DEFAULT))
    if not profiles:
        return CallbackResult(False, platform, "No account that can publish was found in this login.")
    try:
        if rt.settings.oauth_confirm:
            link = keep_pending_link(rt, int(saved["user_id"]), platform, profiles)
            return CallbackResult(True, platform, accounts=len(profiles), link=link)
        for profile in profiles:
            upsert_account(rt, int(saved["user_id"]), platform, profile)
    except Exception as exc:  # the browser always gets a redirect it can show
        log.error("connect %s: storing the account failed: %s", platform, type(exc).__name__,
                  extra={"platform": platform})
        return CallbackResult(False, platform, "The account could not be saved right now; try connecting again "
                                               "in a moment.")
    return CallbackResult(True, platform, accounts=len(profiles))


def keep_pending_link(rt: Runtime, user_id: int, platform: str, profiles: list[AccountProfile]) -> str:
    """Keep what a login found, encrypted, for `LINK_TTL` seconds; return the link's id (random,
    256 bits: only the callback's redirect carries it)."""
    link = secrets.token_urlsafe(32)
    data = {"user_id": user_id, "platform": platform, "profiles": [_profile_data(p) for p in profiles]}
    rt.redis.set(_link_key(link), rt.vault.encrypt(json.dumps(data)), ex=LINK_TTL)
    return link


def confirm_link(rt: Runtime, user_id: int, link: str) -> list[int]:
    """Attach the accounts of a pending link to `user_id`, once, and only when `user_id` called
    connect; returns their ids. Anything else (unknown, expired, used, someone else's) is 404."""
    missing = NotFound("This connection link is unknown, has expired (15 minutes) or was already used; connect the "
                       "account again.", code="link_not_found")
    if not _LINK_ID.fullmatch(link or ""):
        raise missing
    key = _link_key(link)
    raw = rt.redis.get(key)
    if raw is None:
        raise missing
    try:
        data = json.loads(rt.vault.decrypt(raw.decode() if isinstance(raw, bytes) else raw))
    except (VaultError, ValueError, UnicodeDecodeError):
        raise missing from None
    if int(data["user_id"]) != user_id:
        # someone else's link (the case this flow exists for); it stays for its owner
        log.warning("a pending %s link was offered by another user than the one who connected", data["platform"],
                    extra={"platform": data["platform"]})
        raise missing
    ttl = rt.redis.pttl(key)
    if rt.redis.delete(key) != 1:  # two confirmations at once: one wins
        raise missing
    try:
        return [upsert_account(rt, user_id, data["platform"], _profile_from(item)) for item in data["profiles"]]
    except Exception:
        # the database refused: the link comes back for what was left of its time, so a retry works
        if ttl and ttl > 0:
            rt.redis.set(key, raw, px=ttl)
        raise


def _profile_data(profile: AccountProfile) -> dict:
    tokens = profile.tokens
    return {
        "account_id": profile.account_id, "account_name": profile.account_name, "username": profile.username,
        "email": profile.email, "picture_url": profile.picture_url, "metadata": profile.metadata,
        "tokens": {"access_token": tokens.access_token, "refresh_token": tokens.refresh_token,
                   "expires_at": _time_text(tokens.expires_at), "refresh_expires_at": _time_text(tokens.refresh_expires_at),
                   "scope": tokens.scope},
    }


def _profile_from(data: dict) -> AccountProfile:
    tokens = data["tokens"]
    return AccountProfile(
        account_id=data["account_id"], account_name=data["account_name"], username=data.get("username"),
        email=data.get("email"), picture_url=data.get("picture_url"), metadata=data.get("metadata") or {},
        tokens=TokenSet(access_token=tokens["access_token"], refresh_token=tokens.get("refresh_token"),
                        expires_at=_time_value(tokens.get("expires_at")),
                        refresh_expires_at=_time_value(tokens.get("refresh_expires_at")), scope=tokens.get("scope")),
    )


def _time_text(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _time_value(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def upsert_account(rt: Runtime, user_id: int, platform: str, profile: AccountProfile) -> int:
    """Insert or update the account row. Reconnecting keeps the row and never erases a stored
    refresh token with an empty one."""
    t = rt.tables.accounts
    tokens = profile.tokens
    now = utcnow()
    values = {
        "account_name": (profile.account_name or profile.username or profile.account_id)[:255],
        "account_username": profile.username,
        "account_email": profile.email,
        "profile_picture_url": profile.picture_url,
        "access_token": rt.vault.encrypt(tokens.access_token),
        "token_expires_at": tokens.expires_at,
        "token_scope": tokens.scope,
        "is_active": 1,
        "needs_reconnect": 0,
        "reconnect_reason": None,
        "last_token_refresh": now,
        "metadata": json.dumps(_account_metadata(profile, tokens)),
        "updated_at": now,
    }
    if tokens.refresh_token:
        values["refresh_token"] = rt.vault.encrypt(tokens.refresh_token)
    for attempt in range(4):
        try:
            with rt.engine.begin() as conn:
                existing = conn.execute(
                    select(t.c.id).where(t.c.platform == platform, t.c.account_id == profile.account_id,
                                         t.c.wp_user_id == user_id).with_for_update()
                ).scalar()
                if existing:
                    conn.execute(update(t).where(t.c.id == existing).values(**values))
                    return int(existing)
                return int(conn.execute(insert(t).values(wp_user_id=user_id, platform=platform,
                                                         account_id=profile.account_id,
                                                         **values)).inserted_primary_key[0])
        except (OperationalError, IntegrityError) as exc:
            # Two first connections at once: both gap-lock the missing row, one is chosen as the
            # deadlock victim (1213), or the other inserted first (1062). Again, the row exists.
            code = exc.orig.args[0] if getattr(exc, "orig", None) is not None and exc.orig.args else None
            if code not in (1213, 1205, 1062) or attempt == 3:
                raise
    raise RuntimeError("unreachable")


def _account_metadata(profile: AccountProfile, tokens: TokenSet) -> dict:
    data = dict(profile.metadata)
    if tokens.refresh_expires_at:
        data["refresh_expires_at"] = tokens.refresh_expires_at.strftime("%Y-%m-%d %H:%M:%S")
    return data


# What a disconnected account keeps in `access_token` (NOT NULL in the WordPress DDL): nothing.
CLEARED_TOKEN = ""


def account_ref(rt: Runtime, row) -> AccountRef:
    """The account's ids and decrypted tokens. A disconnected account has none: `Reauthorize`."""
    if not row["access_token"] or row["access_token"] == CLEARED_TOKEN:
        raise Reauthorize("This account was disconnected; connect it again.", platform=row["platform"],
                          code="account_disconnected")
    metadata = json.loads(row["metadata"]) if row["metadata"] else {}
    return AccountRef(id=int(row["id"]), account_id=row["account_id"],
                      access_token=rt.vault.decrypt(row["access_token"]),
                      refresh_token=rt.vault.decrypt_optional(row["refresh_token"]),
                      username=row["account_username"], metadata=metadata)


def owned_account(rt: Runtime, user_id: int, account_id: int):
    t = rt.tables.accounts
    with rt.engine.connect() as conn:
        row = conn.execute(select(t).where(t.c.id == account_id, t.c.wp_user_id == user_id,
                                           t.c.is_active == 1)).mappings().first()
    if row is None:
        raise NotFound("This account was not found.", code="account_not_found")
    return row


def refresh_account(rt: Runtime, account_id: int, *, force: bool = False, early: timedelta = REFRESH_EARLY):
    """Refresh the account's token if it expires within `early` (or `force`). Returns the row
    after the refresh. One refresh at a time per account: the row lock serialises callers and the
    ones that waited find the fresh token and return without calling the platform.

    Raises Reauthorize (the account is marked as needing reconnection) or Transient/RateLimited.
    """
    t = rt.tables.accounts
    pending: dict = {}
    try:
        with rt.engine.begin() as conn:
            row = conn.execute(select(t).where(t.c.id == account_id).with_for_update()).mappings().first()
            if row is None:
                raise NotFound("This account was not found.", code="account_not_found")
            expires = row["token_expires_at"]
            if not row["is_active"] or (not force and not due_for_refresh(row, early)):
                return row  # a disconnected account is never refreshed: it has no tokens left
            client = get_client(rt.settings, row["platform"])
            refresh_token = rt.vault.decrypt_optional(row["refresh_token"])
            try:
                if not refresh_token:
                    if expires is not None and expires <= utcnow():
                        raise Reauthorize(f"{client.display_name} gave no refresh token and the login has expired; "
                                          f"connect the account again.", platform=row["platform"], code="reauthorize")
                    return row
                tokens = client.refresh(refresh_token)
            except Reauthorize as exc:
                mark_needs_reconnect(conn, rt.tables, exc.message, account_id=account_id)
                raise
            values = {
                "access_token": rt.vault.encrypt(tokens.access_token),
                "token_expires_at": tokens.expires_at,
                "last_token_refresh": utcnow(),
                "needs_reconnect": 0,
                "reconnect_reason": None,
                "updated_at": utcnow(),
            }
            if tokens.scope:
                values["token_scope"] = tokens.scope
            # A rotated refresh token is stored with its access token, in this transaction.
            if tokens.refresh_token:
                values["refresh_token"] = rt.vault.encrypt(tokens.refresh_token)
            pending.update(values)
            conn.execute(update(t).where(t.c.id == account_id).values(**values))
            _count_refresh(rt, row["platform"])
            return conn.execute(select(t).where(t.c.id == account_id)).mappings().first()
    except OperationalError:
        if not pending:
            raise
        # The platform answered (and may have rotated the refresh token, spending the old one) but
        # the database went away before the new tokens were stored: keep them in hand and store
        # them as soon as it is back, or the account would need reconnecting.
        return _store_refreshed_tokens(rt, account_id, pending)


STORE_RETRY_SECONDS = 120.0


def _store_refreshed_tokens(rt: Runtime, account_id: int, values: dict):
    import time

    t = rt.tables.accounts
    deadline, wait = time.monotonic() + STORE_RETRY_SECONDS, 0.5
    while True:
        try:
            with rt.engine.begin() as conn:
                conn.execute(update(t).where(t.c.id == account_id).values(**values))
                row = conn.execute(select(t).where(t.c.id == account_id)).mappings().first()
            log.warning("refreshed tokens stored after the database came back", extra={"account_id": account_id})
            return row
        except OperationalError:
            if time.monotonic() >= deadline:
                log.error("refreshed tokens could not be stored: the database stayed unreachable",
                          extra={"account_id": account_id})
                raise
            time.sleep(wait)
            wait = min(wait * 2, 10.0)


REFRESH_FLOOR = timedelta(minutes=10)
REFRESH_SPACING = timedelta(minutes=30)


def due_for_refresh(row, early: timedelta) -> bool:
    """Refresh when the token expires within `early`, but not again within REFRESH_SPACING of the
    last refresh (platforms whose tokens live 2 h would otherwise refresh before every step), and
    always when it expires within REFRESH_FLOOR. A token without expiry is not refreshed on a timer."""
    expires = row["token_expires_at"]
    if expires is None:
        return False
    left = expires - utcnow()
    if left <= REFRESH_FLOOR:
        return True
    if left > early:
        return False
    last = row["last_token_refresh"]
    return last is None or utcnow() - last >= REFRESH_SPACING


def _count_refresh(rt: Runtime, platform: str) -> None:
    try:
        from bridge.metrics import TOKEN_REFRESHES

        TOKEN_REFRESHES.labels(platform=platform).inc()
    except Exception:  # metrics never break a refresh
        pass


def refresh_now(rt: Runtime, user_id: int, account_id: int) -> dict:
    owned_account(rt, user_id, account_id)
    try:
        row = refresh_account(rt, account_id, force=True)
    except Reauthorize as exc:
        raise Conflict(exc.message, code="account_needs_reconnect") from None
    except RateLimited as exc:
        raise ApiError(exc.message, status=429, code="rate_limited",
                       headers={"Retry-After": str(int(exc.retry_after))}) from None
    except Transient as exc:
        raise ApiError(exc.message, status=503, code="platform_unavailable") from None
    except PlatformError as exc:
        raise ApiError(exc.message, status=422, code=exc.code) from None
    from bridge.timefmt import fmt

    return {"success": True, "message": "Token refreshed successfully", "expires_at": fmt(row["token_expires_at"])}


def disconnect(rt: Runtime, user_id: int, account_id: int) -> dict:
    """Revoke where the platform allows, then remove the tokens (the seed's "disconnect and
    remove": `access_token` becomes `CLEARED_TOKEN`, `refresh_token` NULL), mark the account
    inactive and cancel its scheduled posts and drafts. The row stays, for the posts that name it."""
    row = owned_account(rt, user_id, account_id)
    revoked = False
    try:
        revoked = get_client(rt.settings, row["platform"]).revoke(account_ref(rt, row))
    except Exception as exc:  # the account is disconnected here even if the platform is unreachable
        log.warning("revoke failed on %s: %s", row["platform"], type(exc).__name__)
    from bridge.domain.status import Status, transition

    t, p = rt.tables.accounts, rt.tables.posts
    with rt.engine.begin() as conn:
        conn.execute(update(t).where(t.c.id == account_id).values(
            is_active=0, access_token=CLEARED_TOKEN, refresh_token=None, token_expires_at=None, updated_at=utcnow()))
        scheduled = conn.execute(select(p.c.id).where(
            and_(p.c.social_account_id == account_id, p.c.status.in_(["scheduled", "draft"])))).scalars().all()
        for post_id in scheduled:
            transition(conn, rt.tables, post_id, [Status.SCHEDULED, Status.DRAFT], Status.CANCELLED,
                       error_code="account_disconnected",
                       error_message="Cancelled because its account was disconnected.")
    message = "Account disconnected successfully"
    if scheduled:
        message += f"; {len(scheduled)} scheduled post(s) cancelled"
    return {"success": True, "message": message, "revoked": revoked, "cancelled_posts": len(scheduled)}


def needs_reconnect_view(row) -> bool:
    return bool(row["needs_reconnect"])


def expires_soon(row, within: timedelta) -> bool:
    expires: datetime | None = row["token_expires_at"]
    return expires is not None and expires - utcnow() <= within
