"""Connecting accounts: OAuth state, the callback, token refresh, disconnect, quota.

The OAuth state is random, single-use, bound to the user and the platform, lives 10 minutes and
is kept in Redis with the PKCE verifier. A refresh holds the account's row lock (SELECT ... FOR
UPDATE) for the platform call, so of many workers that find a token near expiry exactly one
spends the (single-use, rotating) refresh token and the others read its result; the new access
and refresh tokens are written in the same transaction.
"""
from __future__ import annotations

import json
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlencode

from sqlalchemy import and_, insert, select, update
from sqlalchemy.exc import IntegrityError, OperationalError

from bridge.errors import ApiError, Conflict, NotFound
from bridge.platforms.base import AccountProfile, AccountRef, TokenSet
from bridge.platforms.errors import PlatformError, RateLimited, Reauthorize, Transient
from bridge.platforms.registry import REGISTRY, get_client
from bridge.runtime import Runtime
from bridge.store.accounts import mark_needs_reconnect
from bridge.store.db import utcnow

log = logging.getLogger(__name__)

STATE_TTL = 600
REFRESH_EARLY = timedelta(hours=24)


@dataclass
class CallbackResult:
    ok: bool
    platform: str
    message: str = ""
    accounts: int = 0


def _state_key(state: str) -> str:
    return f"bridge:oauth:state:{state}"


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
        reason = params.get("error_description") or params.get("error_reason") or params["error"]
        denied = params["error"] in ("access_denied", "user_denied", "user_cancelled_login", "user_cancelled_authorize")
        text = "You declined the connection." if denied else f"The platform refused the connection: {reason[:150]}"
        return CallbackResult(False, platform, text)
    code = params.get("code")
    if not code:
        return CallbackResult(False, platform, "The platform sent no authorization code; start again.")
    client = get_client(rt.settings, platform)
    try:
        tokens = client.exchange_code(code, saved.get("verifier"))
        profiles = client.fetch_accounts(tokens)
    except PlatformError as exc:
        log.warning("connect %s failed: %s", platform, exc.code, extra={"platform": platform})
        return CallbackResult(False, platform, exc.message)
    if not profiles:
        return CallbackResult(False, platform, "No account that can publish was found in this login.")
    try:
        for profile in profiles:
            upsert_account(rt, int(saved["user_id"]), platform, profile)
    except Exception as exc:  # the browser always gets a redirect it can show
        log.error("connect %s: storing the account failed: %s", platform, type(exc).__name__,
                  extra={"platform": platform})
        return CallbackResult(False, platform, "The account could not be saved right now; try connecting again "
                                               "in a moment.")
    return CallbackResult(True, platform, accounts=len(profiles))


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


def account_ref(rt: Runtime, row) -> AccountRef:
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
            if not force and not due_for_refresh(row, early):
                return row
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
    """Revoke where the platform allows, mark inactive, cancel the account's scheduled posts."""
    row = owned_account(rt, user_id, account_id)
    revoked = False
    try:
        revoked = get_client(rt.settings, row["platform"]).revoke(account_ref(rt, row))
    except Exception as exc:  # the account is disconnected here even if the platform is unreachable
        log.warning("revoke failed on %s: %s", row["platform"], type(exc).__name__)
    from bridge.domain.status import Status, transition

    t, p = rt.tables.accounts, rt.tables.posts
    with rt.engine.begin() as conn:
        conn.execute(update(t).where(t.c.id == account_id).values(is_active=0, updated_at=utcnow()))
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
