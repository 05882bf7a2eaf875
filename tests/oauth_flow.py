"""What the dashboard does after a connect: read where the callback sent the browser and, for a
pending link, confirm it with its own user's token (the pending-link flow of `bridge.services.oauth`)."""
from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from tests.conftest import auth

P = "/wp-json/aurareels/v1/social"


def landed(location: str) -> dict[str, str]:
    """The dashboard redirect's query (`status`, `platform`, `link` or `message`)."""
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def confirm(client, link: str, user_id: int):
    """POST /accounts/links/{link}/confirm as `user_id` (the Flask test client's answer)."""
    return client.post(f"{P}/accounts/links/{link}/confirm", headers=auth(user_id))


def finish(client, location: str, user_id: int) -> list[dict]:
    """The dashboard's side of a successful connect: the redirect is pending, the confirmation
    answers 200; returns the attached accounts."""
    query = landed(location)
    assert query.get("status") == "pending" and query.get("link"), location
    answer = confirm(client, query["link"], user_id)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return answer.get_json()["accounts"]
