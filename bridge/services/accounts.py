"""Account use cases."""
from __future__ import annotations

from bridge.runtime import Runtime
from bridge.store import accounts as account_store
from bridge.timefmt import fmt


def account_view(row) -> dict:
    """The public shape of an account (seed 000): never a token."""
    return {
        "id": int(row["id"]),
        "platform": row["platform"],
        "account_name": row["account_name"],
        "account_username": row["account_username"],
        "profile_picture_url": row["profile_picture_url"],
        "is_active": bool(row["is_active"]),
        "needs_reconnect": bool(row["needs_reconnect"]),
        "token_expires_at": fmt(row["token_expires_at"]),
        "created_at": fmt(row["created_at"]),
    }


def list_accounts(rt: Runtime, user_id: int, platform: str | None = None) -> list[dict]:
    return [account_view(r) for r in account_store.list_for_user(rt, user_id, platform)]


def confirm_link(rt: Runtime, user_id: int, link: str) -> list[dict]:
    """Attach a pending connect's accounts (see `bridge.services.oauth.confirm_link`); their views."""
    from bridge.services.oauth import confirm_link as attach

    ids = set(attach(rt, user_id, link))
    return [account_view(r) for r in account_store.list_for_user(rt, user_id) if int(r["id"]) in ids]
