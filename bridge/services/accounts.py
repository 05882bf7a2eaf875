"""Account use cases: the accounts' public shape, and what an account allows right now."""
from __future__ import annotations

import json
import logging

from bridge.errors import ApiError, Conflict
from bridge.platforms.base import PlatformClient
from bridge.platforms.errors import PlatformError, RateLimited, Reauthorize, TokenExpired, Transient
from bridge.platforms.registry import client_class, get_client
from bridge.runtime import Runtime
from bridge.store import accounts as account_store
from bridge.timefmt import fmt

log = logging.getLogger(__name__)

# TikTok allows a creator-info read about 20 times a minute per creator; a composer asks on every
# change, so what the account allows is kept this long.
OPTIONS_TTL_SECONDS = 60


def account_view(row) -> dict:
    """The public shape of an account (seed 000, plus why it must be connected again): never a token."""
    return {
        "id": int(row["id"]),
        "platform": row["platform"],
        "account_name": row["account_name"],
        "account_username": row["account_username"],
        "profile_picture_url": row["profile_picture_url"],
        "is_active": bool(row["is_active"]),
        "needs_reconnect": bool(row["needs_reconnect"]),
        "reconnect_reason": row["reconnect_reason"] if row["needs_reconnect"] else None,
        "token_expires_at": fmt(row["token_expires_at"]),
        "created_at": fmt(row["created_at"]),
    }


def list_accounts(rt: Runtime, user_id: int, platform: str | None = None) -> list[dict]:
    return [account_view(r) for r in account_store.list_for_user(rt, user_id, platform)]


def reconnect_message(row) -> str:
    """One sentence telling the creator to connect the account again, and why when known."""
    client = client_class(row["platform"])
    why = f" ({row['reconnect_reason'].rstrip('.')})" if row["reconnect_reason"] else ""
    return f"Reconnect the {client.display_name} account {row['account_name']}{why}, then try again."


def asks_the_platform(client: PlatformClient) -> bool:
    """Whether the client's `account_options` asks the platform (TikTok's creator info) rather
    than answering from its declarations."""
    return type(client).account_options is not PlatformClient.account_options


def live_options(rt: Runtime, row) -> dict:
    """What the account allows now, from the platform where it says (kept a minute). The token is
    refreshed first when due, and once more if the platform refuses it. Raises ApiError: 409 when
    the account must be connected again, 429 when the platform limits calls, 503 when it is down."""
    from bridge.services import oauth

    key = f"bridge:account-options:{int(row['id'])}"
    try:
        cached = rt.redis.get(key)
    except Exception:  # no Redis, no cache: the platform is asked
        cached = None
    if cached:
        return json.loads(cached)
    client = get_client(rt.settings, row["platform"])
    try:
        try:
            row = oauth.refresh_account(rt, int(row["id"]))
            options = client.account_options(oauth.account_ref(rt, row))
        except TokenExpired:
            row = oauth.refresh_account(rt, int(row["id"]), force=True)
            options = client.account_options(oauth.account_ref(rt, row))
    except (Reauthorize, TokenExpired) as exc:
        raise Conflict(exc.message, code="account_needs_reconnect") from None
    except RateLimited as exc:
        raise ApiError(exc.message, status=429, code="rate_limited",
                       headers={"Retry-After": str(max(1, int(exc.retry_after)))}) from None
    except Transient as exc:
        raise ApiError(exc.message, status=503, code="platform_unavailable") from None
    except PlatformError as exc:
        raise ApiError(exc.message, status=503, code="platform_unavailable") from None
    try:
        rt.redis.set(key, json.dumps(options), ex=OPTIONS_TTL_SECONDS)
    except Exception:
        pass
    return options


def account_options(rt: Runtime, user_id: int, account_id: int) -> dict:
    """`GET /accounts/{id}/options`: what the composer may offer for this account now (for TikTok
    the creator's privacy levels, longest video and disabled interactions), its limits, whether it
    takes a first comment, and its daily quota."""
    from bridge.services import oauth, quota

    row = oauth.owned_account(rt, user_id, account_id)
    if row["needs_reconnect"]:
        raise Conflict(reconnect_message(row), code="account_needs_reconnect")
    client = get_client(rt.settings, row["platform"])
    options = dict(live_options(rt, row) if asks_the_platform(client)
                   else client.account_options(oauth.account_ref(rt, row)))
    first = client.first_comment
    options.update({
        "account_id": int(row["id"]),
        "platform": row["platform"],
        "caption_limit": client.requirements.caption_max,
        "caption_counting": client.requirements.caption_counting,
        "first_comment": first is not None,
        "first_comment_limit": first.max_length if first else None,
        "quota": quota.summary(quota.account_usage(rt, row)),
    })
    return {"success": True, "options": options}


def confirm_link(rt: Runtime, user_id: int, link: str) -> list[dict]:
    """Attach a pending connect's accounts (see `bridge.services.oauth.confirm_link`); their views."""
    from bridge.services.oauth import confirm_link as attach

    ids = set(attach(rt, user_id, link))
    return [account_view(r) for r in account_store.list_for_user(rt, user_id) if int(r["id"]) in ids]
