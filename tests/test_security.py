"""Security checks over the whole HTTP surface (webhooks have their own file).

* JWT matrix over every user route, found from the app's URL map so a new route cannot be missed,
  plus a valid token for a user who owns nothing;
* IDOR matrix: another user's ids on every route answer 404 and change nothing;
* OAuth: state reused, of another user, of another platform, expired, missing; code replayed;
  redirect_uri tampered at the platform: refused, nothing stored;
* internal routes without, with a wrong and with an empty key: 401;
* SSRF outside sandbox mode: loopback, private, link-local, metadata, odd IP spellings, names that
  resolve to loopback, non-http schemes, and redirects to any of them: refused;
* limits: oversized bodies, huge captions, thousands of hashtags, deep JSON, wrong content types;
* secrets: the suite's fake secrets and every emulator-issued token never appear in a log line or a
  response (checked here for the flows below, and for the whole session by tests/conftest.py).
"""
from __future__ import annotations

import json
import logging
import re
import threading
import time
from html import unescape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import pytest
from sqlalchemy import delete, func, insert, select

from bridge.app import API_PREFIX, create_app
from bridge.config import PLATFORMS, Settings
from bridge.platforms.media import MediaError, MediaSource, check_media_url
from bridge.runtime import Runtime
from bridge.platforms.base import AccountProfile, TokenSet
from bridge.services.oauth import STATE_TTL, _state_key, keep_pending_link
from tests.conftest import FAKE_SECRETS, INTERNAL_KEY, JWT_SECRET, auth, base_env, make_jwt
from tests.factories import add_account, add_post, add_video, later
from tests.test_api_auth import CASES as JWT_CASES

P = "/wp-json/aurareels/v1/social"
ALICE, BOB, NOBODY = 701, 702, 703
SOON, SOON_ISO = later(30), later(30, "%Y-%m-%dT%H:%M:%SZ")


# ------------------------------------------------------------------------------------ helpers
def count(rt, table) -> int:
    with rt.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar()


def snapshot(rt) -> tuple:
    """Everything a request could change: posts and accounts, every column that matters, the
    analytics rows, and Alice's and Bob's templates and hashtag groups."""
    p, a, an = rt.tables.posts, rt.tables.accounts, rt.tables.analytics
    tm, hg = rt.tables.templates, rt.tables.hashtag_groups
    with rt.engine.connect() as conn:
        posts = conn.execute(select(p.c.id, p.c.status, p.c.scheduled_at, p.c.retry_count, p.c.metadata,
                                    p.c.wp_user_id).order_by(p.c.id)).all()
        accounts = conn.execute(select(a.c.id, a.c.is_active, a.c.access_token, a.c.refresh_token,
                                       a.c.needs_reconnect, a.c.wp_user_id).order_by(a.c.id)).all()
        analytics = conn.execute(select(an.c.social_post_id, an.c.last_attempt_at, an.c.views)
                                 .order_by(an.c.social_post_id)).all()
        templates = conn.execute(select(tm.c.id, tm.c.name, tm.c.caption, tm.c.wp_user_id)
                                 .where(tm.c.wp_user_id.in_((ALICE, BOB))).order_by(tm.c.id)).all()
        groups = conn.execute(select(hg.c.id, hg.c.name, hg.c.hashtags, hg.c.wp_user_id)
                              .where(hg.c.wp_user_id.in_((ALICE, BOB))).order_by(hg.c.id)).all()
    return tuple(tuple(map(tuple, rows)) for rows in (posts, accounts, analytics, templates, groups))


@pytest.fixture
def world(rt):
    """Alice and Bob, each with a video, an account and posts in every state a route acts on."""
    ids = {}
    for who, user in (("alice", ALICE), ("bob", BOB)):
        account = add_account(rt, user, "tiktok", account_id=f"tt-{user}")
        ids[f"{who}_account"] = account
        ids[f"{who}_video"] = add_video(rt, user)
        ids[f"{who}_post"] = add_post(rt, user, account)
        ids[f"{who}_failed"] = add_post(rt, user, account, status="failed", error_code="transient")
        ids[f"{who}_link"] = keep_pending_link(rt, user, "tiktok", [AccountProfile(
            f"tt-new-{user}", f"new-{user}", TokenSet(access_token=f"act.pending-{user}"))])
        with rt.engine.begin() as conn:
            conn.execute(delete(rt.tables.templates).where(rt.tables.templates.c.wp_user_id == user))
            conn.execute(delete(rt.tables.hashtag_groups).where(rt.tables.hashtag_groups.c.wp_user_id == user))
            ids[f"{who}_template"] = conn.execute(insert(rt.tables.templates).values(
                wp_user_id=user, name=f"{who}'s template", caption="hi")).inserted_primary_key[0]
            ids[f"{who}_group"] = conn.execute(insert(rt.tables.hashtag_groups).values(
                wp_user_id=user, name=f"{who}'s tags", hashtags='["#a"]')).inserted_primary_key[0]
    return ids


# Every user route of the interface, as the URL map spells it, with how to fill its ids and body.
USER_ROUTES = {
    ("GET", "/accounts"): (None, None),
    ("POST", "/accounts/connect/<string:platform>"): (None, {}),
    ("POST", "/accounts/links/<string:link>/confirm"): ("link", {}),
    ("POST", "/accounts/<int:account_id>/refresh"): ("account", {}),
    ("DELETE", "/accounts/<int:account_id>"): ("account", None),
    ("GET", "/accounts/<int:account_id>/quota"): ("account", None),
    ("POST", "/publish"): (None, "publish"),
    ("POST", "/schedule"): (None, "schedule"),
    ("GET", "/posts"): (None, None),
    ("GET", "/posts/<int:post_id>"): ("post", None),
    ("DELETE", "/posts/<int:post_id>"): ("post", None),
    ("PATCH", "/posts/<int:post_id>/reschedule"): ("post", {"scheduled_at": SOON}),
    ("POST", "/posts/<int:post_id>/retry"): ("failed", {}),
    ("PATCH", "/posts/<int:post_id>"): ("post", {"caption": "changed"}),
    ("POST", "/drafts"): (None, "publish"),
    ("POST", "/posts/<int:post_id>/publish"): ("post", {}),
    ("POST", "/posts/<int:post_id>/schedule"): ("post", {"scheduled_at": SOON}),
    ("POST", "/validate"): (None, "publish"),
    ("GET", "/platforms"): (None, None),
    ("GET", "/accounts/<int:account_id>/options"): ("account", None),
    ("GET", "/posts/<int:post_id>/analytics"): ("post", None),
    ("POST", "/posts/<int:post_id>/analytics/refresh"): ("post", {}),
    ("GET", "/analytics/summary"): (None, None),
    ("GET", "/analytics/best-times"): (None, None),
    ("GET", "/templates"): (None, None),
    ("POST", "/templates"): (None, {"name": "Mine"}),
    ("PATCH", "/templates/<int:template_id>"): ("template", {"name": "Renamed"}),
    ("DELETE", "/templates/<int:template_id>"): ("template", None),
    ("GET", "/hashtag-groups"): (None, None),
    ("POST", "/hashtag-groups"): (None, {"name": "Mine", "hashtags": ["#mine"]}),
    ("PATCH", "/hashtag-groups/<int:group_id>"): ("group", {"name": "Renamed"}),
    ("DELETE", "/hashtag-groups/<int:group_id>"): ("group", None),
}
NOT_FOUND_CODES = ("post_not_found", "account_not_found", "video_not_found", "template_not_found",
                   "hashtag_group_not_found", "link_not_found")


def _routes_by_decorator(app, decorator_name: str) -> set[tuple[str, str]]:
    found = set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith(API_PREFIX):
            continue
        view = app.view_functions[rule.endpoint]
        view_class = getattr(view, "view_class", None)
        decorators = getattr(view_class, "decorators", []) or []
        if not any(getattr(d, "__name__", "") == decorator_name for d in decorators):
            continue
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            found.add((method, rule.rule[len(API_PREFIX):]))
    return found


def fill(route, owner: str, ids: dict, platform: str = "tiktok"):
    """(method, url, json body) for `route` using `owner`'s objects ("alice" or "bob")."""
    method, rule = route
    kind, body = USER_ROUTES[route]
    path = rule.replace("<string:platform>", platform)
    if kind == "account":
        path = re.sub(r"<int:\w+>", str(ids[f"{owner}_account"]), path)
    elif kind == "post":
        path = re.sub(r"<int:\w+>", str(ids[f"{owner}_post"]), path)
    elif kind in ("failed", "template", "group"):
        path = re.sub(r"<int:\w+>", str(ids[f"{owner}_{kind}"]), path)
    elif kind == "link":
        path = path.replace("<string:link>", ids[f"{owner}_link"])
    if body in ("publish", "schedule"):
        body = {"video_job_id": ids[f"{owner}_video"], "accounts": [ids[f"{owner}_account"]], "caption": "hi"}
        if route[1] == "/schedule":
            body["scheduled_at"] = SOON_ISO
    return method, P + path, body


def call(client, method, url, body=None, headers=None):
    kwargs = {"headers": headers or {}}
    if body is not None:
        kwargs["json"] = body
    return client.open(url, method=method, **kwargs)


def test_user_route_table_covers_every_user_route(app):
    """The matrices below run over USER_ROUTES; this keeps it equal to what the app serves."""
    assert _routes_by_decorator(app, "user_required") == set(USER_ROUTES)


# ------------------------------------------------------------------------------- JWT matrix
def _bad_tokens() -> dict[str, tuple]:
    cases = {name: (lambda make=make: f"Bearer {make()}", code)
             for name, (make, status, code) in JWT_CASES.items() if status == 401}
    cases.update({
        "no header": (lambda: None, "missing_token"),
        "empty bearer": (lambda: "Bearer ", "missing_token"),
        "basic scheme": (lambda: "Basic dXNlcjpwYXNz", "missing_token"),
        "internal key as bearer": (lambda: f"Bearer {INTERNAL_KEY}", "invalid_token"),
        "user id 0": (lambda: f"Bearer {make_jwt(0)}", "missing_user"),
        "user id too big": (lambda: f"Bearer {make_jwt(2 ** 64)}", "missing_user"),
        "signed with the internal key": (lambda: f"Bearer {make_jwt(ALICE, secret=INTERNAL_KEY + '-padding-to-32b')}",
                                         "invalid_token"),
    })
    return cases


BAD_TOKENS = _bad_tokens()


@pytest.mark.parametrize("token_case", list(BAD_TOKENS))
@pytest.mark.parametrize("route", list(USER_ROUTES), ids=lambda r: f"{r[0]} {r[1]}")
def test_jwt_matrix_on_every_user_route(client, rt, world, route, token_case):
    make, code = BAD_TOKENS[token_case]
    header = make()
    before = snapshot(rt)
    method, url, body = fill(route, "alice", world)
    response = call(client, method, url, body, {"Authorization": header} if header is not None else {})
    assert response.status_code == 401, (url, response.get_data(as_text=True))
    answer = response.get_json()
    assert answer == {"success": False, "code": code, "message": answer["message"]}
    assert response.headers.get("WWW-Authenticate") == "Bearer"
    token = header.split(" ", 1)[1].strip() if header and " " in header else ""
    if len(token) > 8:
        assert token not in response.get_data(as_text=True)
    assert snapshot(rt) == before


@pytest.mark.parametrize("route", list(USER_ROUTES), ids=lambda r: f"{r[0]} {r[1]}")
def test_valid_token_of_a_user_who_owns_nothing(client, rt, world, route):
    """A real, valid login that owns nothing sees nothing and changes nothing of anyone's."""
    before = snapshot(rt)
    method, url, body = fill(route, "alice", world)
    response = call(client, method, url, body, auth(NOBODY))
    answer = response.get_json()
    if route == ("GET", "/accounts"):
        assert response.status_code == 200 and answer["accounts"] == []
    elif route == ("GET", "/posts"):
        assert response.status_code == 200 and answer["total"] == 0 and answer["posts"] == []
    elif route == ("GET", "/platforms"):
        assert response.status_code == 200 and set(answer["platforms"]) == set(PLATFORMS)
    elif route in (("GET", "/templates"), ("GET", "/hashtag-groups")):
        assert response.status_code == 200 and answer[route[1][1:].replace("-", "_")] == []
    elif route == ("GET", "/analytics/summary"):
        assert response.status_code == 200 and answer["totals"]["posts"] == 0 and answer["top_posts"] == []
    elif route == ("GET", "/analytics/best-times"):
        assert response.status_code == 200 and answer["basis"] == "default" and answer["posts_analyzed"] == 0
    elif route in (("POST", "/templates"), ("POST", "/hashtag-groups")):
        # saving one's own template or group is allowed; it is this user's
        item = answer["template"] if "template" in answer else answer["hashtag_group"]
        assert response.status_code == 200 and item["name"] == "Mine"
    elif route[1].startswith("/accounts/connect/"):
        # starting a connection of one's own is allowed; it stores nothing but a state for this user
        assert response.status_code == 200 and answer["success"] is True
        saved = json.loads(rt.redis.get(_state_key(answer["state"])))
        assert saved["user_id"] == NOBODY
    else:
        assert response.status_code == 404, response.get_data(as_text=True)
        assert answer["success"] is False and answer["code"] in NOT_FOUND_CODES
    assert snapshot(rt) == before


# ------------------------------------------------------------------------------- IDOR matrix
ID_ROUTES = [r for r, (kind, body) in USER_ROUTES.items() if kind or body in ("publish", "schedule")]


@pytest.mark.parametrize("route", ID_ROUTES, ids=lambda r: f"{r[0]} {r[1]}")
def test_other_users_ids_answer_404_and_change_nothing(client, rt, world, route):
    before = snapshot(rt)
    method, url, body = fill(route, "bob", world)
    response = call(client, method, url, body, auth(ALICE))
    assert response.status_code == 404, response.get_data(as_text=True)
    assert response.get_json()["code"] in NOT_FOUND_CODES
    assert snapshot(rt) == before
    # the same route with Alice's own ids works (the 404 is about ownership, not the route)
    method, url, body = fill(route, "alice", world)
    assert call(client, method, url, body, auth(ALICE)).status_code != 404


@pytest.mark.parametrize("route", ["/publish", "/schedule"])
@pytest.mark.parametrize("mix", ["bob's video, alice's account", "alice's video, bob's account",
                                 "alice's video, alice's and bob's accounts"])
def test_publish_with_anyone_elses_video_or_account_creates_nothing(client, rt, world, route, mix):
    video = world["bob_video"] if mix.startswith("bob's video") else world["alice_video"]
    accounts = {"bob's video, alice's account": [world["alice_account"]],
                "alice's video, bob's account": [world["bob_account"]],
                "alice's video, alice's and bob's accounts": [world["alice_account"], world["bob_account"]]}[mix]
    body = {"video_job_id": video, "accounts": accounts, "caption": "x"}
    if route == "/schedule":
        body["scheduled_at"] = SOON
    before = snapshot(rt)
    response = client.post(P + route, headers=auth(ALICE), json=body)
    assert response.status_code == 404 and response.get_json()["code"] in ("video_not_found", "account_not_found")
    assert snapshot(rt) == before


def test_lists_show_only_the_callers_objects(client, rt, world):
    posts = client.get(f"{P}/posts?per_page=100", headers=auth(ALICE)).get_json()["posts"]
    assert {p["id"] for p in posts} == {world["alice_post"], world["alice_failed"]}
    accounts = client.get(f"{P}/accounts", headers=auth(ALICE)).get_json()["accounts"]
    assert [a["id"] for a in accounts] == [world["alice_account"]]


# ---------------------------------------------------------------------------- internal routes
def test_internal_route_table(app):
    assert _routes_by_decorator(app, "internal_required") == {("POST", "/internal/publish-scheduled"),
                                                              ("GET", "/metrics")}


INTERNAL_BODIES = {"/internal/publish-scheduled": {"post_id": 1, "scheduled_at": SOON_ISO},
                   "/metrics": None}
BAD_KEYS = {
    "no key": {},
    "wrong key": {"X-API-Key": "wrong-key"},
    "empty key": {"X-API-Key": ""},
    "empty bearer": {"Authorization": "Bearer "},
    "wrong bearer": {"Authorization": "Bearer wrong-key"},
    "key with one char more": {"X-API-Key": INTERNAL_KEY + "x"},
    "key prefix": {"X-API-Key": INTERNAL_KEY[:-1]},
    "a user's JWT": {"Authorization": f"Bearer {make_jwt(ALICE)}"},
    "key in the query string": {"_query": f"api_key={INTERNAL_KEY}"},
}


@pytest.mark.parametrize("case", list(BAD_KEYS))
@pytest.mark.parametrize("path,method", [("/internal/publish-scheduled", "POST"), ("/metrics", "GET")])
def test_internal_routes_refuse_missing_wrong_and_empty_keys(client, rt, world, path, method, case):
    headers = dict(BAD_KEYS[case])
    query = headers.pop("_query", None)
    body = INTERNAL_BODIES[path]
    if body is not None and path.endswith("publish-scheduled"):
        body = {**body, "post_id": world["alice_post"]}
    before = snapshot(rt)
    response = call(client, method, P + path + (f"?{query}" if query else ""), body, headers)
    assert response.status_code == 401, response.get_data(as_text=True)
    answer = response.get_json()
    assert answer["success"] is False and answer["code"] == "invalid_api_key"
    assert INTERNAL_KEY not in response.get_data(as_text=True)
    assert snapshot(rt) == before


def test_internal_routes_accept_the_key(client, world):
    assert client.get(f"{P}/metrics", headers={"X-API-Key": INTERNAL_KEY}).status_code == 200
    answer = client.post(f"{P}/internal/publish-scheduled", headers={"Authorization": f"Bearer {INTERNAL_KEY}"},
                         json={"post_id": world["alice_post"], "scheduled_at": "2001-01-01T00:00:00Z"})
    assert answer.status_code == 409  # authenticated; the post is not due at that time


# ---------------------------------------------------------------------------------------- OAuth
def _consent(client, auth_url: str, decision: str = "allow", user: str = "creator-a",
             redirect_uri: str | None = None) -> str:
    """Drive the emulator's consent page through the bridge's /_sandbox mount (a browser); with
    `redirect_uri`, the authorize URL is tampered first. Returns where the platform sent the browser."""
    if redirect_uri:
        parts = urlsplit(auth_url)
        query = parse_qs(parts.query)
        query["redirect_uri"] = [redirect_uri]
        auth_url = urlunsplit(parts._replace(query=urlencode({k: v[0] for k, v in query.items()})))
    path = "/" + auth_url.split("://", 1)[1].split("/", 1)[1]
    page = client.get(path)
    assert page.status_code == 200, page.get_data(as_text=True)[:300]
    fields = {unescape(n): unescape(v) for n, v in re.findall(
        r'<input type="hidden" name="([^"]*)" value="([^"]*)">', page.get_data(as_text=True))}
    fields.update({"decision": decision, "sandbox_user": user})
    answer = client.post(path, data=fields)
    assert answer.status_code in (302, 303), answer.get_data(as_text=True)[:300]
    return answer.headers["Location"]


def _start(client, platform: str, user: int) -> dict:
    response = client.post(f"{P}/accounts/connect/{platform}", headers=auth(user), json={})
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def _callback(client, platform: str, params: dict, headers: dict | None = None) -> dict:
    response = client.get(f"{P}/callback/{platform}?{urlencode(params)}", headers=headers or {})
    assert response.status_code == 302
    target = urlsplit(response.headers["Location"])
    assert target.netloc == "frontend.example" and target.path == "/dashboard/social-accounts"
    return {k: v[0] for k, v in parse_qs(target.query).items()}


def _params(location: str) -> dict:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def _confirm(client, landed: dict, user: int):
    """What the dashboard does with a pending link: confirm it with its user's token."""
    assert landed["status"] == "pending" and landed["link"], landed
    return client.post(f"{P}/accounts/links/{landed['link']}/confirm", headers=auth(user))


def _accounts_of(rt, user_id) -> list:
    a = rt.tables.accounts
    with rt.engine.connect() as conn:
        return conn.execute(select(a.c.id, a.c.platform, a.c.access_token).where(a.c.wp_user_id == user_id)).all()


def test_oauth_state_is_single_use_and_a_replay_stores_nothing_more(client, rt):
    start = _start(client, "tiktok", ALICE)
    params = _params(_consent(client, start["auth_url"]))
    assert _confirm(client, _callback(client, "tiktok", params), ALICE).status_code == 200
    stored = _accounts_of(rt, ALICE)
    assert len(stored) == 1
    again = _callback(client, "tiktok", params)
    assert again["status"] == "error" and "expired or was already used" in again["message"]
    assert _accounts_of(rt, ALICE) == stored


def test_oauth_state_binds_the_account_to_the_user_who_started(client, rt):
    """The callback carries no login: whoever's browser opens it, the account can only go to the user
    who started the connection. Bob opening Alice's callback links nothing to Bob."""
    start = _start(client, "tiktok", ALICE)
    params = _params(_consent(client, start["auth_url"]))
    landed = _callback(client, "tiktok", params, headers=auth(BOB))
    assert _confirm(client, landed, BOB).status_code == 404
    assert _confirm(client, landed, ALICE).status_code == 200
    assert len(_accounts_of(rt, ALICE)) == 1 and _accounts_of(rt, BOB) == []
    assert client.get(f"{P}/accounts", headers=auth(BOB)).get_json()["accounts"] == []


def test_oauth_code_of_one_login_with_the_state_of_another_user_is_refused(client, rt):
    """X binds its code to the PKCE challenge of the login that asked for it: Alice's code with Bob's
    state (and so Bob's verifier) is refused; nothing is stored for either."""
    alice = _start(client, "twitter", ALICE)
    bob = _start(client, "twitter", BOB)
    code = _params(_consent(client, alice["auth_url"]))["code"]
    answer = _callback(client, "twitter", {"code": code, "state": bob["state"]})
    assert answer["status"] == "error"
    assert _accounts_of(rt, ALICE) == [] and _accounts_of(rt, BOB) == []


def test_oauth_spent_code_of_one_user_with_the_state_of_another_is_refused(client, rt):
    alice = _start(client, "tiktok", ALICE)
    params = _params(_consent(client, alice["auth_url"]))
    assert _callback(client, "tiktok", params)["status"] == "pending"
    bob = _start(client, "tiktok", BOB)
    assert _callback(client, "tiktok", {"code": params["code"], "state": bob["state"]})["status"] == "error"
    assert _accounts_of(rt, BOB) == []


def test_oauth_state_of_another_platform_is_refused_and_spent(client, rt):
    start = _start(client, "tiktok", ALICE)
    params = _params(_consent(client, start["auth_url"]))
    wrong = _callback(client, "instagram", params)
    assert wrong["status"] == "error" and "another platform" in wrong["message"]
    # the state is spent by the attempt: the right platform cannot use it afterwards either
    assert _callback(client, "tiktok", params)["status"] == "error"
    assert _accounts_of(rt, ALICE) == []


def test_oauth_expired_state_is_refused(client, rt):
    start = _start(client, "tiktok", ALICE)
    key = _state_key(start["state"])
    assert 0 < rt.redis.ttl(key) <= STATE_TTL <= 600
    params = _params(_consent(client, start["auth_url"]))
    rt.redis.pexpire(key, 1)
    time.sleep(0.05)
    answer = _callback(client, "tiktok", params)
    assert answer["status"] == "error" and "expired" in answer["message"]
    assert _accounts_of(rt, ALICE) == []


@pytest.mark.parametrize("state", [None, "", "forged-state-value", "x" * 5000])
def test_oauth_missing_or_unknown_state_is_refused(client, rt, state):
    start = _start(client, "tiktok", ALICE)
    params = _params(_consent(client, start["auth_url"]))
    if state is None:
        params.pop("state")
    else:
        params["state"] = state
    assert _callback(client, "tiktok", params)["status"] == "error"
    assert _accounts_of(rt, ALICE) == []


def test_oauth_code_replayed_with_a_fresh_state_is_refused(client, rt):
    first = _start(client, "tiktok", ALICE)
    params = _params(_consent(client, first["auth_url"]))
    assert _confirm(client, _callback(client, "tiktok", params), ALICE).status_code == 200
    stored = _accounts_of(rt, ALICE)
    second = _start(client, "tiktok", ALICE)
    answer = _callback(client, "tiktok", {"code": params["code"], "state": second["state"]})
    assert answer["status"] == "error"
    assert _accounts_of(rt, ALICE) == stored  # the stored token is the first one, untouched


@pytest.mark.parametrize("platform", PLATFORMS)
def test_oauth_code_issued_for_a_tampered_redirect_uri_is_refused(client, rt, platform):
    """An attacker rewrites redirect_uri in the authorize URL to collect the code, then feeds it to
    the real callback with the victim's state: the platform binds the code to the redirect_uri it
    was issued for, the bridge exchanges with its own, and the exchange is refused."""
    start = _start(client, platform, ALICE)
    location = _consent(client, start["auth_url"], redirect_uri="https://evil.example/steal")
    assert location.startswith("https://evil.example/steal"), location
    params = _params(location)
    assert params.get("code"), location
    answer = _callback(client, platform, {"code": params["code"], "state": start["state"]})
    assert answer["status"] == "error", answer
    assert _accounts_of(rt, ALICE) == []


def test_oauth_error_from_the_platform_spends_the_state(client, rt):
    start = _start(client, "tiktok", ALICE)
    params = _params(_consent(client, start["auth_url"], decision="deny"))
    assert _callback(client, "tiktok", params)["status"] == "error"
    assert rt.redis.get(_state_key(start["state"])) is None
    assert _accounts_of(rt, ALICE) == []


# ----------------------------------------------------------------------------------------- SSRF
class _RedirectServer:
    """A loopback HTTP server listed in AURAREELS_MEDIA_HOSTS_ALLOWED (a 'public' media host for the
    test): /r?to=URL redirects there, /ok.mp4 serves a small MP4 with byte ranges."""

    def __init__(self):
        from bridge.sandbox.media import synthetic_bytes

        size, duration = 200_000, 12.0
        body = b"".join(synthetic_bytes(size, duration, 0, size - 1))

        server_self = self
        self.hits = 0

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                server_self.hits += 1
                parts = urlsplit(self.path)
                if parts.path == "/r":
                    self.send_response(302)
                    self.send_header("Location", parse_qs(parts.query)["to"][0])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if parts.path == "/ok.mp4":
                    first, _, last = (self.headers.get("Range") or "bytes=0-").removeprefix("bytes=").partition("-")
                    start, end = int(first or 0), min(int(last) if last else size - 1, size - 1)
                    self.send_response(206)
                    self.send_header("Content-Type", "video/mp4")
                    self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
                    self.send_header("Content-Length", str(end - start + 1))
                    self.end_headers()
                    self.wfile.write(body[start:end + 1])
                    return
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.base = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def redirect(self, to: str) -> str:
        return f"{self.base}/r?{urlencode({'to': to})}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def media_server():
    server = _RedirectServer()
    yield server
    server.close()


@pytest.fixture
def outside(database_url, media_server) -> Settings:
    """Production settings: no sandbox; only the test media server is an allowed internal host."""
    return Settings.from_env(base_env(AURAREELS_DATABASE_URL=database_url, AURAREELS_SANDBOX="0",
                                      AURAREELS_MEDIA_HOSTS_ALLOWED=f"127.0.0.1:{media_server.port}"))


FORBIDDEN = [
    "http://127.0.0.1/v.mp4", "http://127.0.0.1:6379/", "http://127.1/v.mp4", "http://0.0.0.0/v.mp4",
    "http://0/v.mp4", "http://localhost/v.mp4", "http://LOCALHOST:3306/v.mp4",
    "http://10.0.0.7/v.mp4", "http://10.255.255.255/v.mp4", "http://172.16.0.1/v.mp4", "http://172.31.255.254/v.mp4",
    "http://192.168.1.1/v.mp4", "http://169.254.169.254/latest/meta-data/", "http://169.254.170.2/v2/credentials",
    "http://100.64.0.1/v.mp4", "http://[::1]/v.mp4", "http://[::]/v.mp4", "http://[fd00::1]/v.mp4",
    "http://[fd00:ec2::254]/latest/meta-data/", "http://[fe80::1]/v.mp4", "http://[::ffff:127.0.0.1]/v.mp4",
    "http://[::ffff:7f00:1]/v.mp4", "http://[::ffff:169.254.169.254]/v.mp4", "http://[64:ff9b::7f00:1]/v.mp4",
    "http://[2002:7f00:1::1]/v.mp4", "http://2130706433/v.mp4", "http://0x7f000001/v.mp4",
    "http://0177.0.0.1/v.mp4", "http://017700000001/v.mp4", "http://user:pw@127.0.0.1/v.mp4",
    "https://127.0.0.1:443/v.mp4", "http://224.0.0.1/v.mp4",
    "file:///etc/passwd", "file://localhost/etc/passwd", "gopher://127.0.0.1:6379/_FLUSHALL", "dict://127.0.0.1:6379/",
    "ftp://127.0.0.1/v.mp4", "data:video/mp4;base64,AAAA", "javascript:alert(1)", "//127.0.0.1/v.mp4",
    "/etc/passwd", "",
]


@pytest.mark.parametrize("url", FORBIDDEN)
def test_ssrf_outside_sandbox_is_refused(outside, url):
    with pytest.raises(MediaError) as caught:
        MediaSource(outside, url).probe()
    assert caught.value.code == "media_url_forbidden", (url, caught.value.code, caught.value.message)
    message = caught.value.message
    assert "internal network address" in message or "http:// or https://" in message or "no host" in message


REDIRECT_TARGETS = ["http://127.0.0.1:6379/", "http://localhost/v.mp4", "http://169.254.169.254/latest/meta-data/",
                    "http://10.0.0.7/v.mp4", "http://[::1]/v.mp4", "http://2130706433/", "file:///etc/passwd",
                    "gopher://127.0.0.1:6379/_FLUSHALL", "http://[::ffff:127.0.0.1]/v.mp4"]


@pytest.mark.parametrize("target", REDIRECT_TARGETS)
def test_ssrf_redirect_from_an_allowed_host_to_an_internal_one_is_refused(outside, media_server, target):
    with pytest.raises(MediaError) as caught:
        MediaSource(outside, media_server.redirect(target)).probe()
    assert caught.value.code == "media_url_forbidden", (target, caught.value.message)


def test_ssrf_redirect_chain_to_an_internal_host_is_refused(outside, media_server):
    chain = media_server.redirect(media_server.redirect(media_server.redirect("http://127.0.0.1:22/")))
    with pytest.raises(MediaError) as caught:
        MediaSource(outside, chain).probe()
    assert caught.value.code == "media_url_forbidden"


def test_ssrf_dns_rebinding_is_refused_at_connect_time(outside, media_server, monkeypatch):
    """A name that is public when the URL is checked and loopback when the connection is made (DNS
    rebinding) is refused at connect time: the internal server never sees a request."""
    import socket

    real = socket.getaddrinfo
    answers = iter(["93.184.216.34", "127.0.0.1"])

    def rebinding(host, port, *args, **kwargs):
        if host == "rebind.example":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (next(answers, "127.0.0.1"), port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    hits = media_server.hits
    with pytest.raises(MediaError) as caught:
        MediaSource(outside, f"http://rebind.example:{media_server.port}/ok.mp4").probe()
    assert caught.value.code == "media_url_forbidden"
    assert media_server.hits == hits


def test_allowed_host_and_redirects_within_it_still_work(outside, media_server):
    """The control: the allowed host serves, and a redirect that stays on it is followed."""
    info = MediaSource(outside, media_server.redirect(f"{media_server.base}/ok.mp4")).probe()
    assert info.size == 200_000 and round(info.duration_sec) == 12
    # the same server under another name or port is not the allowed entry
    with pytest.raises(MediaError):
        MediaSource(outside, f"http://localhost:{media_server.port}/ok.mp4").probe()


def test_ssrf_through_the_api_outside_sandbox(rt, outside, media_server):
    runtime = Runtime.from_settings(outside, engine=rt.engine)
    client = create_app(runtime=runtime).test_client()
    account = add_account(rt, ALICE, "tiktok")
    for url in ("http://169.254.169.254/latest/meta-data/", "http://localhost:6379/",
                media_server.redirect("http://127.0.0.1:3306/"), "file:///etc/passwd"):
        video = add_video(rt, ALICE, mp4_url=url)
        response = client.post(f"{P}/publish", headers=auth(ALICE), json={"video_job_id": video,
                                                                         "accounts": [account]})
        answer = response.get_json()
        assert response.status_code == 422 and answer["code"] == "media_url_forbidden", (url, answer)
        assert answer["message"] and answer["errors"]["video"]
    assert count(rt, rt.tables.posts) == 0


def test_check_media_url_allows_only_listed_internal_hosts(outside, media_server):
    check_media_url(f"{media_server.base}/ok.mp4", outside)  # listed host:port
    with pytest.raises(MediaError):
        check_media_url(f"http://127.0.0.1:{media_server.port + 1}/ok.mp4", outside)


# --------------------------------------------------------------------------------------- limits
def _publish_body(world, **extra):
    return {"video_job_id": world["alice_video"], "accounts": [world["alice_account"]], "caption": "x", **extra}


JSON_ROUTES = [("POST", "/publish", "user"), ("POST", "/schedule", "user"),
               ("PATCH", "/posts/{post}/reschedule", "user"), ("POST", "/posts/{post}/retry", "user"),
               ("POST", "/accounts/connect/tiktok", "user"), ("POST", "/internal/publish-scheduled", "internal")]


# routes that take no body: whatever is sent is never read
BODYLESS = ("/posts/{post}/retry", "/accounts/connect/tiktok")


def _headers(kind):
    return auth(ALICE) if kind == "user" else {"X-API-Key": INTERNAL_KEY}


@pytest.mark.parametrize("method,path,kind", JSON_ROUTES)
def test_oversized_body_is_413(client, rt, world, method, path, kind):
    url = P + path.format(post=world["alice_post"])
    data = b'{"caption": "' + b"x" * (1_048_576 + 10) + b'"}'
    response = client.open(url, method=method, data=data, headers={**_headers(kind),
                                                                   "Content-Type": "application/json"})
    if path in BODYLESS:
        assert response.status_code < 500  # the body is never read
    else:
        assert response.status_code == 413, response.get_data(as_text=True)[:200]
        assert response.get_json()["code"] == "payload_too_large"
    assert count(rt, rt.tables.posts) == 4


@pytest.mark.parametrize("method,path,kind", JSON_ROUTES)
def test_deeply_nested_json_is_400_not_500(client, rt, world, method, path, kind):
    url = P + path.format(post=world["alice_post"])
    depth = 100_000
    for data in ("[" * depth + "]" * depth, '{"a":' * depth + "1" + "}" * depth):
        assert len(data) < 1_048_576
        response = client.open(url, method=method, data=data, headers={**_headers(kind),
                                                                       "Content-Type": "application/json"})
        if path in BODYLESS:
            assert response.status_code < 500
            continue
        assert response.status_code == 400, (path, response.status_code, response.get_data(as_text=True)[:200])
        assert response.get_json()["success"] is False
    assert count(rt, rt.tables.posts) == 4


@pytest.mark.parametrize("depth", [50, 500, 900])
def test_nested_options_inside_a_valid_body_are_not_a_500(client, rt, world, depth):
    options = {"tiktok_source": "FILE_UPLOAD"}
    node = options
    for _ in range(depth):
        node["n"] = {}
        node = node["n"]
    response = client.post(f"{P}/schedule", headers=auth(ALICE),
                           json=_publish_body(world, scheduled_at=SOON, options=options))
    assert response.status_code < 500, response.get_data(as_text=True)[:300]


@pytest.mark.parametrize("field,value", [
    ("caption", "x" * 50_000),
    ("caption", "😀" * 50_000),
    ("hashtags", [f"#tag{i}" for i in range(5_000)]),
    ("hashtags", ["#" + "h" * 10_000]),
    ("mentions", [f"@user{i}" for i in range(5_000)]),
    ("title", "t" * 10_000),
    ("video_job_id", "j" * 10_000),
    ("accounts", list(range(1, 5_001))),
    ("location", "l" * 10_000),
    ("options", {f"k{i}": i for i in range(5_000)} | {"x" * 1000: 1}),
])
@pytest.mark.parametrize("route", ["/publish", "/schedule"])
def test_huge_fields_are_clean_422(client, rt, world, route, field, value):
    body = _publish_body(world, **{field: value})
    if route == "/schedule":
        body["scheduled_at"] = SOON
    response = client.post(P + route, headers=auth(ALICE), json=body)
    assert response.status_code in (404, 422), (field, response.status_code, response.get_data(as_text=True)[:300])
    answer = response.get_json()
    assert answer["success"] is False and answer["code"] and answer["message"]
    assert count(rt, rt.tables.posts) == 4


def test_caption_at_the_schema_limit_in_four_byte_characters_is_not_a_500(client, rt, world):
    """20,000 emoji are 80,000 bytes: more than a TEXT column holds. Facebook allows 63,206
    characters, so only the schema limit stands between this body and the database. (Found by
    this suite: it answered 500 from the database's DataError.)"""
    account = add_account(rt, ALICE, "facebook", account_id="fb-page-1")
    response = client.post(f"{P}/schedule", headers=auth(ALICE), json={
        "video_job_id": world["alice_video"], "accounts": [account], "caption": "😀" * 20_000,
        "scheduled_at": SOON})
    assert response.status_code == 422, response.get_data(as_text=True)[:300]
    assert response.get_json()["success"] is False
    assert count(rt, rt.tables.posts) == 4


@pytest.mark.parametrize("value", ["k" * 129, "k" * 10_000, "ключ-" * 40])
def test_oversized_idempotency_key_is_not_a_500(client, rt, world, value):
    response = client.post(f"{P}/publish", headers={**auth(ALICE), "Idempotency-Key": value},
                           json=_publish_body(world))
    assert response.status_code < 500, response.get_data(as_text=True)[:300]


@pytest.mark.parametrize("scheduled_at", ["x" * 41, "9999-99-99 99:99:99", "2099-01-01T10:00:00+99:00",
                                          "2099-01-01 10:00:00\x00abc", "0000-00-00 00:00:00",
                                          "１９９９-01-01 10:00:00", "2099-01-01 25:00:00", "2099-02-30 10:00:00",
                                          "10000-01-01 00:00:00", "2099-01-01T10:00:00+24:00"])
def test_bad_times_are_422(client, rt, world, scheduled_at):
    response = client.post(f"{P}/schedule", headers=auth(ALICE),
                           json=_publish_body(world, scheduled_at=scheduled_at))
    assert response.status_code == 422, (scheduled_at, response.get_data(as_text=True)[:300])
    response = client.patch(f"{P}/posts/{world['alice_post']}/reschedule", headers=auth(ALICE),
                            json={"scheduled_at": scheduled_at})
    assert response.status_code == 422, (scheduled_at, response.get_data(as_text=True)[:300])


@pytest.mark.parametrize("path", ["/posts/99999999999999999999999999", "/posts/18446744073709551616",
                                  "/accounts/99999999999999999999999999/quota"])
def test_huge_ids_in_paths_are_404(client, world, path):
    response = client.get(P + path, headers=auth(ALICE))
    assert response.status_code == 404, response.get_data(as_text=True)[:300]


@pytest.mark.parametrize("content_type,data", [
    ("text/plain", '{"video_job_id": "j", "accounts": [1]}'),
    ("application/x-www-form-urlencoded", "video_job_id=j&accounts=1"),
    ("multipart/form-data; boundary=xx", '--xx\r\nContent-Disposition: form-data; name="a"\r\n\r\n1\r\n--xx--\r\n'),
    (None, '{"video_job_id": "j", "accounts": [1]}'),
    ("application/json", "not json at all"),
    ("application/json", '{"video_job_id": "j", "accounts": [1]'),
    ("application/json", b"\xff\xfe\x00garbage"),
    ("application/json", '"a string, not an object"'),
    ("application/json", "[1, 2, 3]"),
    ("application/json", "null"),
    ("application/json", ""),
])
@pytest.mark.parametrize("method,path,kind", JSON_ROUTES)
def test_wrong_content_type_or_body_is_a_clean_4xx(client, rt, world, method, path, kind, content_type, data):
    url = P + path.format(post=world["alice_post"])
    headers = dict(_headers(kind))
    if content_type:
        headers["Content-Type"] = content_type
    response = client.open(url, method=method, data=data, headers=headers)
    if path in BODYLESS:
        assert response.status_code < 500, response.get_data(as_text=True)[:300]
        return
    assert 400 <= response.status_code < 500, (content_type, data, response.status_code,
                                               response.get_data(as_text=True)[:300])
    answer = response.get_json()
    assert answer["success"] is False and answer["code"] and answer["message"]
    assert count(rt, rt.tables.posts) == 4


# -------------------------------------------------------------------------------------- secrets
def test_secret_watch_sees_a_leak_and_not_a_redacted_value():
    """The session-wide check (tests/conftest.py) works: a secret in a formatted log line or a
    response is found; the same secret behind a redacted key is not."""
    from tests.secret_watch import CaptureHandler, SecretWatch

    watch = SecretWatch(fixed=("fixed-secret-value-0001",))
    watch.add_issued("act.0123456789abcdef0123")
    logger = logging.getLogger("tests.secret_watch.selftest")
    logger.propagate = False
    handler = CaptureHandler(watch)
    logger.addHandler(handler)
    try:
        logger.warning("calling with access_token=act.0123456789abcdef0123 and Bearer fixed-secret-value-0001")
        assert watch.leaks == []  # both redacted by the production formatter
        logger.warning("oops %s", "act.0123456789abcdef0123")
        logger.warning("key is fixed-secret-value-0001")
    finally:
        logger.removeHandler(handler)
    assert len(watch.leaks) == 2
    assert watch.find('{"token": "act.0123456789abcdef0123"}') == ["act.0123456789abcdef0123"]
    assert watch.find("xact.0123456789abcdef0123") == []


def test_flows_with_tokens_and_errors_leak_no_secret(client, rt, secret_watch):
    """Connect (all six platforms), refresh, quota, publish, failures and disconnect through the API
    with the emulators issuing real tokens: no secret and no issued token in any log or response."""
    from bridge.sandbox.core import shared_sandbox

    issued_before = len(secret_watch.issued)
    for platform in PLATFORMS:
        start = _start(client, platform, ALICE)
        landed = _callback(client, platform, _params(_consent(client, start["auth_url"])))
        assert _confirm(client, landed, ALICE).status_code == 200
    assert len(secret_watch.issued) > issued_before
    accounts = client.get(f"{P}/accounts", headers=auth(ALICE)).get_json()["accounts"]
    assert len(accounts) >= len(PLATFORMS)
    sandbox = shared_sandbox()
    for account in accounts:
        client.post(f"{P}/accounts/{account['id']}/refresh", headers=auth(ALICE), json={})
        client.get(f"{P}/accounts/{account['id']}/quota", headers=auth(ALICE))
    # the platforms fail a refresh: the error paths log and answer, without the token
    for platform in PLATFORMS:
        fault = sandbox.inject(platform, kind="status", status=500, times=1)
        account = next(a for a in accounts if a["platform"] == platform)
        client.post(f"{P}/accounts/{account['id']}/refresh", headers=auth(ALICE), json={})
        sandbox.faults[platform].remove(fault)
    video = add_video(rt, ALICE)
    client.post(f"{P}/schedule", headers=auth(ALICE), json={"video_job_id": video, "accounts": [a["id"] for a in accounts],
                                                          "caption": "secrets?", "scheduled_at": SOON})
    client.get(f"{P}/posts", headers=auth(ALICE))
    client.get(f"{P}/accounts", headers={"Authorization": f"Bearer {JWT_SECRET}"})
    client.post(f"{P}/internal/publish-scheduled", headers={"X-API-Key": INTERNAL_KEY + "-wrong"}, json={})
    for account in accounts:
        client.delete(f"{P}/accounts/{account['id']}", headers=auth(ALICE))
    assert secret_watch.scanned_responses > 0 and secret_watch.scanned_logs > 0
    assert secret_watch.leaks == [], [str(leak) for leak in secret_watch.leaks]
    for secret in FAKE_SECRETS:
        with rt.engine.connect() as conn:
            a = rt.tables.accounts
            assert not conn.execute(select(func.count()).where(a.c.access_token.contains(secret))).scalar()
