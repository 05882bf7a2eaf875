"""The posts routes: list, read, reschedule, cancel, retry, with two users for ownership."""
from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select

from bridge.store.db import utcnow
from tests.conftest import auth
from tests.factories import add_account, add_post, add_video, later

P = "/wp-json/aurareels/v1/social"
ALICE, BOB = 101, 202


@pytest.fixture
def two_users(rt):
    a_acc = add_account(rt, ALICE, "tiktok")
    b_acc = add_account(rt, BOB, "tiktok")
    return {"alice_account": a_acc, "bob_account": b_acc,
            "alice_post": add_post(rt, ALICE, a_acc), "bob_post": add_post(rt, BOB, b_acc)}


def status_of(rt, post_id):
    p = rt.tables.posts
    with rt.engine.connect() as conn:
        return conn.execute(select(p.c.status).where(p.c.id == post_id)).scalar()


def test_list_posts_shape_and_ownership(client, rt, two_users):
    body = client.get(f"{P}/posts", headers=auth(ALICE)).get_json()
    assert body["success"] is True and body["total"] == 1
    post = body["posts"][0]
    # seed 000 "List Posts": these keys with these types
    expected = {"id": int, "platform": str, "status": str, "caption": str, "platform_post_url": (str, type(None)),
                "published_at": (str, type(None)), "video_job_id": str, "account_name": str}
    for key, kind in expected.items():
        assert isinstance(post[key], kind), key
    assert post["id"] == two_users["alice_post"]


def test_list_filters_pagination_and_order(client, rt):
    acc = add_account(rt, ALICE, "tiktok")
    ig = add_account(rt, ALICE, "instagram")
    now = utcnow()
    ids = [add_post(rt, ALICE, acc, scheduled_at=now + timedelta(days=d), created_at=now + timedelta(seconds=d))
           for d in range(1, 6)]
    add_post(rt, ALICE, ig, platform="instagram", status="published", scheduled_at=None,
             published_at=now - timedelta(days=10), created_at=now - timedelta(days=10))
    everything = client.get(f"{P}/posts?per_page=2&page=1", headers=auth(ALICE)).get_json()
    assert everything["total"] == 6 and [p["id"] for p in everything["posts"]] == [ids[4], ids[3]]
    page3 = client.get(f"{P}/posts?per_page=2&page=3", headers=auth(ALICE)).get_json()
    assert len(page3["posts"]) == 2 and page3["posts"][-1]["platform"] == "instagram"
    only_ig = client.get(f"{P}/posts?platform=instagram", headers=auth(ALICE)).get_json()
    assert only_ig["total"] == 1 and only_ig["posts"][0]["status"] == "published"
    scheduled = client.get(f"{P}/posts?status=scheduled", headers=auth(ALICE)).get_json()
    assert scheduled["total"] == 5
    start = (now + timedelta(days=2, hours=-1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    end = (now + timedelta(days=3, hours=1)).strftime("%Y-%m-%d %H:%M:%S")
    window = client.get(f"{P}/posts?from={start}&to={end}", headers=auth(ALICE)).get_json()
    assert sorted(p["id"] for p in window["posts"]) == sorted([ids[1], ids[2]])
    past = (now - timedelta(days=11)).strftime("%Y-%m-%dT%H:%M:%SZ")
    calendar = client.get(f"{P}/posts?from={past}&to={(now - timedelta(days=9)).isoformat()}Z",
                          headers=auth(ALICE)).get_json()
    assert [p["platform"] for p in calendar["posts"]] == ["instagram"]


@pytest.mark.parametrize("query", ["status=gone", "platform=myspace", "page=0", "per_page=1000", "from=yesterday"])
def test_list_bad_query_is_422(client, query):
    response = client.get(f"{P}/posts?{query}", headers=auth(ALICE))
    assert response.status_code == 422 and response.get_json()["success"] is False


def test_get_post_shape(client, rt, two_users):
    body = client.get(f"{P}/posts/{two_users['alice_post']}", headers=auth(ALICE)).get_json()
    post = body["post"]
    expected = {"id": int, "platform": str, "status": str, "caption": str, "hashtags": list,
                "platform_post_id": (str, type(None)), "platform_post_url": (str, type(None)), "video_url": str,
                "thumbnail_url": (str, type(None)), "scheduled_at": (str, type(None)),
                "published_at": (str, type(None)), "error_message": (str, type(None)), "retry_count": int,
                "account": dict}
    for key, kind in expected.items():
        assert isinstance(post[key], kind), key
    assert set(post["account"]) >= {"id", "account_name", "account_username"}
    assert post["hashtags"] == ["#a"]


ROUTES = [
    ("get", "/posts/{post}", None),
    ("delete", "/posts/{post}", None),
    ("patch", "/posts/{post}/reschedule", {"scheduled_at": "2099-01-01 10:00:00"}),
    ("post", "/posts/{post}/retry", {}),
    ("post", "/accounts/{account}/refresh", {}),
    ("delete", "/accounts/{account}", None),
    ("get", "/accounts/{account}/quota", None),
]


@pytest.mark.parametrize("method,path,body", ROUTES)
def test_other_users_ids_are_404(client, rt, two_users, method, path, body):
    url = P + path.format(post=two_users["bob_post"], account=two_users["bob_account"])
    response = getattr(client, method)(url, headers=auth(ALICE), json=body)
    assert response.status_code == 404, response.get_data(as_text=True)
    assert response.get_json()["code"] in ("post_not_found", "account_not_found")
    # nothing changed for Bob
    assert status_of(rt, two_users["bob_post"]) == "scheduled"


@pytest.mark.parametrize("method,path,body", ROUTES)
def test_user_with_nothing_gets_404(client, rt, two_users, method, path, body):
    url = P + path.format(post=two_users["alice_post"], account=two_users["alice_account"])
    response = getattr(client, method)(url, headers=auth(999), json=body)
    assert response.status_code == 404


def test_reschedule(client, rt, two_users):
    post = two_users["alice_post"]
    day = later(60, "%Y-%m-%d")
    response = client.patch(f"{P}/posts/{post}/reschedule", headers=auth(ALICE),
                            json={"scheduled_at": f"{day}T05:06:07+02:00"})
    assert response.status_code == 200
    body = response.get_json()
    assert body == {"success": True, "message": "Post rescheduled successfully",
                    "post": {"id": post, "scheduled_at": f"{day} 03:06:07"}}
    past = client.patch(f"{P}/posts/{post}/reschedule", headers=auth(ALICE), json={"scheduled_at": "2001-01-01 00:00:00"})
    assert past.status_code == 422 and past.get_json()["code"] == "scheduled_in_past"
    garbage = client.patch(f"{P}/posts/{post}/reschedule", headers=auth(ALICE), json={"scheduled_at": "soon"})
    assert garbage.status_code == 422 and garbage.get_json()["code"] == "invalid_datetime"
    missing = client.patch(f"{P}/posts/{post}/reschedule", headers=auth(ALICE), json={})
    assert missing.status_code == 422 and "scheduled_at" in missing.get_json()["errors"]


def test_reschedule_takes_the_post_from_a_worker_holding_the_old_time(client, rt, two_users):
    """A worker that readied the old time's wake-up holds a lease on the post; after a reschedule
    it holds nothing, so the sweeper is free to wake the post at its new time."""
    from datetime import timedelta

    from sqlalchemy import select, update

    from bridge.store.db import utcnow

    post, p = two_users["alice_post"], rt.tables.posts
    with rt.engine.begin() as conn:
        conn.execute(update(p).where(p.c.id == post).values(lease_owner="host.1:armed",
                                                            lease_until=utcnow() + timedelta(minutes=5)))
    response = client.patch(f"{P}/posts/{post}/reschedule", headers=auth(ALICE),
                            json={"scheduled_at": later(60, "%Y-%m-%dT%H:%M:%SZ")})
    assert response.status_code == 200
    with rt.engine.connect() as conn:
        row = conn.execute(select(p.c.status, p.c.lease_owner, p.c.lease_until).where(p.c.id == post)).one()
    assert tuple(row) == ("scheduled", None, None)


@pytest.mark.parametrize("status", ["published", "publishing", "failed", "cancelled"])
def test_reschedule_wrong_state_is_409(client, rt, status):
    acc = add_account(rt, ALICE)
    post = add_post(rt, ALICE, acc, status=status)
    response = client.patch(f"{P}/posts/{post}/reschedule", headers=auth(ALICE), json={"scheduled_at": "2099-01-01 10:00"})
    assert response.status_code == 409 and response.get_json()["code"] == f"post_{status}"


def test_cancel_scheduled_and_delete_draft(client, rt, two_users):
    post = two_users["alice_post"]
    response = client.delete(f"{P}/posts/{post}", headers=auth(ALICE))
    assert response.get_json() == {"success": True, "message": "Post cancelled successfully"}
    assert status_of(rt, post) == "cancelled"
    again = client.delete(f"{P}/posts/{post}", headers=auth(ALICE))
    assert again.status_code == 409 and again.get_json()["code"] == "post_cancelled"
    draft = add_post(rt, ALICE, two_users["alice_account"], status="draft")
    assert client.delete(f"{P}/posts/{draft}", headers=auth(ALICE)).status_code == 200
    assert status_of(rt, draft) is None


@pytest.mark.parametrize("status", ["published", "publishing", "failed"])
def test_cancel_wrong_state_is_409(client, rt, status):
    post = add_post(rt, ALICE, add_account(rt, ALICE), status=status)
    response = client.delete(f"{P}/posts/{post}", headers=auth(ALICE))
    assert response.status_code == 409 and response.get_json()["code"] == f"post_{status}"


def test_retry_failed_post(client, rt):
    post = add_post(rt, ALICE, add_account(rt, ALICE), status="failed", error_code="transient", retry_count=2)
    body = client.post(f"{P}/posts/{post}/retry", headers=auth(ALICE), json={}).get_json()
    assert body == {"success": True, "message": "Retrying publication",
                    "post": {"id": post, "status": "publishing", "retry_count": 3}}
    assert status_of(rt, post) == "publishing"
    again = client.post(f"{P}/posts/{post}/retry", headers=auth(ALICE), json={})
    assert again.status_code == 409 and again.get_json()["code"] == "post_publishing"


def test_retry_stops_at_three_retries(client, rt):
    post = add_post(rt, ALICE, add_account(rt, ALICE), status="failed", error_code="transient", retry_count=3)
    answer = client.post(f"{P}/posts/{post}/retry", headers=auth(ALICE), json={})
    assert answer.status_code == 409 and answer.get_json()["code"] == "retry_limit_reached"
    assert status_of(rt, post) == "failed"


def test_retry_of_a_post_whose_account_must_reconnect_says_so(client, rt):
    account = add_account(rt, ALICE, "youtube", needs_reconnect=1, reconnect_reason="Google revoked the login")
    post = add_post(rt, ALICE, account, platform="youtube", status="failed", error_code="account_needs_reconnect")
    answer = client.post(f"{P}/posts/{post}/retry", headers=auth(ALICE), json={})
    assert answer.status_code == 409 and answer.get_json()["code"] == "account_needs_reconnect"
    assert answer.get_json()["message"].startswith("Reconnect the YouTube account")
    gone = add_account(rt, ALICE, "linkedin", active=0)
    post = add_post(rt, ALICE, gone, platform="linkedin", status="failed", error_code="account_disconnected")
    answer = client.post(f"{P}/posts/{post}/retry", headers=auth(ALICE), json={})
    assert answer.status_code == 409 and answer.get_json()["code"] == "account_disconnected"
    assert "reconnect it" in answer.get_json()["message"] and status_of(rt, post) == "failed"


def test_accounts_and_posts_say_why_an_account_must_reconnect(client, rt):
    fine = add_account(rt, ALICE, "tiktok")
    stale = add_account(rt, ALICE, "instagram", needs_reconnect=1, reconnect_reason="The password changed.")
    accounts = {a["id"]: a for a in client.get(f"{P}/accounts", headers=auth(ALICE)).get_json()["accounts"]}
    assert accounts[fine]["reconnect_reason"] is None
    assert accounts[stale]["reconnect_reason"] == "The password changed." and accounts[stale]["needs_reconnect"]
    post = add_post(rt, ALICE, stale, platform="instagram")
    detail = client.get(f"{P}/posts/{post}", headers=auth(ALICE)).get_json()["post"]
    assert detail["account"]["reconnect_reason"] == "The password changed."


def test_posts_of_one_submission_share_a_group_and_list_by_it(client, rt):
    video = add_video(rt, ALICE)
    ig, fb = add_account(rt, ALICE, "instagram"), add_account(rt, ALICE, "facebook")
    answer = client.post(f"{P}/schedule", headers=auth(ALICE), json={
        "video_job_id": video, "accounts": [ig, fb], "caption": "Together",
        "captions": {"facebook": "Together, on Facebook"}, "scheduled_at": later(days=1)}).get_json()
    group = answer["group_id"]
    assert {p["group_id"] for p in answer["posts"]} == {group}
    add_post(rt, ALICE, ig, platform="instagram", video_job_id=video, group_id="another-group")
    listed = client.get(f"{P}/posts?group_id={group}", headers=auth(ALICE)).get_json()
    assert listed["total"] == 2 and {p["group_id"] for p in listed["posts"]} == {group}
    assert {p["platform"]: p["caption"] for p in listed["posts"]} == {"instagram": "Together",
                                                                      "facebook": "Together, on Facebook"}
    by_video = client.get(f"{P}/posts?video_job_id={video}", headers=auth(ALICE)).get_json()
    assert by_video["total"] == 3
    assert client.get(f"{P}/posts?group_id={group}", headers=auth(BOB)).get_json()["total"] == 0


def test_retry_unconfirmed_checks_platform_first(client, rt):
    post = add_post(rt, ALICE, add_account(rt, ALICE), status="failed", error_code="unconfirmed",
                    metadata=json.dumps({"checkpoint": {"stage": "init"}}))
    assert client.post(f"{P}/posts/{post}/retry", headers=auth(ALICE), json={}).status_code == 200
    p = rt.tables.posts
    with rt.engine.connect() as conn:
        metadata = json.loads(conn.execute(select(p.c.metadata).where(p.c.id == post)).scalar())
    assert metadata["reconcile_first"] is True and metadata["checkpoint"] == {"stage": "init"}


@pytest.mark.parametrize("status", ["scheduled", "published", "cancelled"])
def test_retry_wrong_state_is_409(client, rt, status):
    post = add_post(rt, ALICE, add_account(rt, ALICE), status=status)
    response = client.post(f"{P}/posts/{post}/retry", headers=auth(ALICE), json={})
    assert response.status_code == 409 and response.get_json()["code"] == f"post_{status}"


def test_disconnect_cancels_scheduled_posts(client, rt, two_users):
    acc = two_users["alice_account"]
    response = client.delete(f"{P}/accounts/{acc}", headers=auth(ALICE))
    body = response.get_json()
    assert response.status_code == 200 and body["success"] is True and body["cancelled_posts"] == 1
    assert status_of(rt, two_users["alice_post"]) == "cancelled"
    assert client.get(f"{P}/accounts", headers=auth(ALICE)).get_json()["accounts"] == []
    assert status_of(rt, two_users["bob_post"]) == "scheduled"


def test_quota_counts_last_24h(client, rt):
    acc = add_account(rt, ALICE, "tiktok")
    now = utcnow()
    for hours in (1, 2, 30):
        add_post(rt, ALICE, acc, status="published", scheduled_at=None, published_at=now - timedelta(hours=hours))
    body = client.get(f"{P}/accounts/{acc}/quota", headers=auth(ALICE)).get_json()
    assert body["success"] is True and body["used"] == 2 and body["limit"] == 15 and body["remaining"] == 13
    assert body["source"] == "bridge" and body["next_slot_at"] is None


def test_internal_route_needs_key(client, rt, two_users):
    url = f"{P}/internal/publish-scheduled"
    payload = {"post_id": two_users["alice_post"], "scheduled_at": "2099-01-01T00:00:00Z"}
    for headers in ({}, {"X-API-Key": "wrong"}, {"X-API-Key": ""}, {"Authorization": "Bearer wrong"}):
        response = client.post(url, json=payload, headers=headers)
        assert response.status_code == 401 and response.get_json()["success"] is False
    assert status_of(rt, two_users["alice_post"]) == "scheduled"
