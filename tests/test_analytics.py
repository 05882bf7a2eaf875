"""Analytics against the real MariaDB, a real worker and the sandbox emulators: posts published
through the engine, their metrics synced over simulated days (the sandbox clock and the sync's
notion of now move together) and read back through the routes."""
from __future__ import annotations

import threading
import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select, update

from bridge.services.analytics import due_posts, engagement_rate, interval_for, next_sync_at, sync_due
from bridge.store.db import utcnow
from tests.conftest import auth
from tests.factories import add_post
from tests.test_engine import USER, api, connect, final, publish, sandbox  # noqa: F401

P = "/wp-json/aurareels/v1/social"
ENGAGING = ("tiktok", "instagram", "facebook", "youtube", "twitter")


def test_cadence_by_age():
    assert interval_for(timedelta(hours=3)) == timedelta(hours=1)
    assert interval_for(timedelta(days=3)) == timedelta(hours=6)
    assert interval_for(timedelta(days=20)) == timedelta(days=1)
    assert interval_for(timedelta(days=60)) == timedelta(days=7)
    assert interval_for(timedelta(days=91)) is None


def test_next_sync_follows_the_cadence_and_ends_at_90_days():
    published = utcnow()
    assert next_sync_at(published, published + timedelta(minutes=5)) == published + timedelta(hours=1, minutes=5)
    assert next_sync_at(published, published + timedelta(days=2)) == published + timedelta(days=2, hours=6)
    assert next_sync_at(published, published + timedelta(days=88)) == published + timedelta(days=90)
    assert next_sync_at(published, published + timedelta(days=91)) is None


def test_engagement_rate():
    assert engagement_rate(1000, 50, 20, 30) == Decimal("10.00")
    assert engagement_rate(1000, 50, 20, 30, saves=100) == Decimal("20.00")
    assert engagement_rate(0, 5, 0, 0) is None
    assert engagement_rate(1, 5000, 0, 0) == Decimal("999.99")


@pytest.fixture
def quiet_maintenance(engine_rt):
    """Hold the fleet's periodic-jobs lock, so the session worker's maintenance thread does not
    sync metrics on its own while a test drives the sync with a simulated clock."""
    token = f"test-{uuid.uuid4().hex}"
    engine_rt.redis.set("bridge:lock:refresh", token, ex=900)
    yield
    if engine_rt.redis.get("bridge:lock:refresh") == token.encode():
        engine_rt.redis.delete("bridge:lock:refresh")


def analytics_of(api, post_id, user=USER):  # noqa: F811
    answer = api.get(f"{P}/posts/{post_id}/analytics", headers=auth(user))
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return answer.get_json()


def analytics_row(rt, post_id):
    an = rt.tables.analytics
    with rt.engine.connect() as conn:
        return conn.execute(select(an).where(an.c.social_post_id == post_id)).mappings().first()


def published_post(engine_rt, api, platform):  # noqa: F811
    account = connect(engine_rt, platform)
    post_id = publish(api, engine_rt, account, caption=f"Metrics {platform} {uuid.uuid4().hex[:6]}")
    row = final(engine_rt, post_id, timeout=60)
    assert row["status"] == "published", (row["error_code"], row["error_message"])
    return post_id, row


@pytest.mark.parametrize("platform", ENGAGING)
def test_metrics_flow_from_the_emulator_to_the_routes_over_simulated_days(engine_rt, api, sandbox,  # noqa: F811
                                                                          quiet_maintenance, platform):
    post_id, row = published_post(engine_rt, api, platform)
    before = analytics_of(api, post_id)
    assert before["analytics"] is None and before["history"] == [] and before["sync"]["status"] == "pending"

    start, elapsed, seen = utcnow(), 0, []
    for day in (0, 1, 3, 7):
        sandbox.clock.advance((day - elapsed) * 86400)  # the platform's audience has had these days
        elapsed = day
        assert sync_due(engine_rt, start + timedelta(days=day, minutes=1)) == 1
        body = analytics_of(api, post_id)
        assert body["sync"]["status"] == "synced", body["sync"]
        assert len(body["history"]) == len(seen) + 1
        assert {k: body["history"][-1][k] for k in ("views", "likes", "comments", "shares")} == {
            k: body["analytics"][k] for k in ("views", "likes", "comments", "shares")}
        seen.append(body["analytics"])
    views = [a["views"] for a in seen]
    engaged = [a["likes"] + a["comments"] + a["shares"] for a in seen]
    assert views == sorted(views) and engaged == sorted(engaged)
    assert engaged[-1] > engaged[0], seen
    times = [p["synced_at"] for p in body["history"]]
    assert times == sorted(times) and len(set(times)) == 4
    last = seen[-1]
    if last["views"]:
        assert last["engagement_rate"] == pytest.approx(
            (last["likes"] + last["comments"] + last["shares"] + (last["saves"] or 0)) * 100 / last["views"], abs=0.01)

    # Not due again until its cadence says so, whatever the day.
    assert sync_due(engine_rt, start + timedelta(days=7, hours=1)) == 0

    window = {"from": (start - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
              "to": (start + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")}
    summary = api.get(f"{P}/analytics/summary", headers=auth(USER), query_string=window).get_json()
    assert summary["totals"]["posts"] == 1 and summary["totals"]["views"] == last["views"]
    assert summary["platforms"][platform]["likes"] == last["likes"]
    assert [a["id"] for a in summary["accounts"]] == [row["social_account_id"]]
    assert [p["id"] for p in summary["top_posts"]] == [post_id]


def test_linkedin_without_analytics_permission_is_stated_once_and_not_retried(engine_rt, api, sandbox,  # noqa: F811
                                                                             quiet_maintenance):
    post_id, _ = published_post(engine_rt, api, "linkedin")
    start = utcnow()
    assert sync_due(engine_rt, start) == 0
    body = analytics_of(api, post_id)
    assert body["analytics"] is None
    assert body["sync"]["status"] == "unavailable" and body["sync"]["code"] == "metrics_unavailable"
    assert "LinkedIn" in body["sync"]["message"] and body["sync"]["next_sync_at"] is None
    stated = analytics_row(engine_rt, post_id)["last_attempt_at"]
    for day in (1, 2, 8, 40):
        now = start + timedelta(days=day)
        assert post_id not in [p["id"] for p in due_posts(engine_rt, now)]
        sync_due(engine_rt, now)
    assert analytics_row(engine_rt, post_id)["last_attempt_at"] == stated  # never asked again

    # The user may ask again (after reconnecting with more permissions, say): a refresh does.
    with engine_rt.engine.begin() as conn:
        an = engine_rt.tables.analytics
        conn.execute(update(an).where(an.c.social_post_id == post_id).values(
            last_attempt_at=stated - timedelta(minutes=2)))
    answer = api.post(f"{P}/posts/{post_id}/analytics/refresh", headers=auth(USER))
    assert answer.status_code == 200 and answer.get_json()["sync"]["status"] == "unavailable"
    assert analytics_row(engine_rt, post_id)["last_attempt_at"] > stated - timedelta(minutes=2)


def test_refresh_fetches_now_at_most_once_a_minute_and_only_for_the_owner(engine_rt, api, sandbox,  # noqa: F811
                                                                        quiet_maintenance):
    post_id, row = published_post(engine_rt, api, "tiktok")
    sandbox.emulator("tiktok").set_metrics(row["platform_post_id"], view_count=500, like_count=40, comment_count=6,
                                           share_count=4)
    assert api.post(f"{P}/posts/{post_id}/analytics/refresh", headers=auth(USER + 1)).status_code == 404
    assert api.get(f"{P}/posts/{post_id}/analytics", headers=auth(USER + 1)).status_code == 404

    answer = api.post(f"{P}/posts/{post_id}/analytics/refresh", headers=auth(USER))
    assert answer.status_code == 200, answer.get_data(as_text=True)
    body = answer.get_json()
    assert body["success"] is True and len(body["history"]) == 1
    assert {k: body["analytics"][k] for k in ("views", "likes", "comments", "shares", "saves", "reach")} == {
        "views": 500, "likes": 40, "comments": 6, "shares": 4, "saves": None, "reach": None}
    assert body["analytics"]["engagement_rate"] == 10.0

    again = api.post(f"{P}/posts/{post_id}/analytics/refresh", headers=auth(USER))
    assert again.status_code == 429 and again.get_json()["code"] == "refresh_too_soon"
    assert 1 <= int(again.headers["Retry-After"]) <= 60
    assert len(analytics_of(api, post_id)["history"]) == 1

    # A minute later (moved back in the row rather than waited for) it fetches again.
    with engine_rt.engine.begin() as conn:
        an = engine_rt.tables.analytics
        conn.execute(update(an).where(an.c.social_post_id == post_id).values(
            last_attempt_at=utcnow() - timedelta(seconds=61)))
    sandbox.emulator("tiktok").set_metrics(row["platform_post_id"], view_count=800)
    later = api.post(f"{P}/posts/{post_id}/analytics/refresh", headers=auth(USER)).get_json()
    assert later["analytics"]["views"] == 800 and len(later["history"]) == 2


def test_refreshes_at_once_fetch_once(engine_rt, api, sandbox, quiet_maintenance):  # noqa: F811
    post_id, _ = published_post(engine_rt, api, "tiktok")
    calls = len([r for r in sandbox.requests("tiktok") if "video/query" in r["path"]])
    statuses: list[int] = []
    barrier = threading.Barrier(8)

    def refresh():
        barrier.wait()
        statuses.append(api.post(f"{P}/posts/{post_id}/analytics/refresh", headers=auth(USER)).status_code)

    threads = [threading.Thread(target=refresh) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200] + [429] * 7
    assert len([r for r in sandbox.requests("tiktok") if "video/query" in r["path"]]) == calls + 1
    assert len(analytics_of(api, post_id)["history"]) == 1


def test_a_platform_outage_is_retried_later_not_stated_as_unavailable(engine_rt, api, sandbox,  # noqa: F811
                                                                     quiet_maintenance):
    post_id, _ = published_post(engine_rt, api, "tiktok")
    sandbox.inject("tiktok", kind="status", status=503, path="video/query", times=1)
    answer = api.post(f"{P}/posts/{post_id}/analytics/refresh", headers=auth(USER))
    assert answer.status_code == 503 and answer.get_json()["code"] == "platform_unavailable"
    assert answer.headers["Retry-After"]
    sync = analytics_of(api, post_id)["sync"]
    assert sync["status"] == "retrying" and sync["code"] and sync["next_sync_at"] is not None
    start = utcnow()
    assert post_id not in [p["id"] for p in due_posts(engine_rt, start + timedelta(minutes=30))]
    assert sync_due(engine_rt, start + timedelta(hours=1, minutes=1)) == 1
    body = analytics_of(api, post_id)
    assert body["sync"]["status"] == "synced" and body["sync"]["code"] is None and body["analytics"] is not None


def test_refresh_of_a_post_not_published_is_409(engine_rt, api):  # noqa: F811
    account = connect(engine_rt, "tiktok")
    post_id = add_post(engine_rt, USER, account, status="scheduled")
    answer = api.post(f"{P}/posts/{post_id}/analytics/refresh", headers=auth(USER))
    assert answer.status_code == 409 and answer.get_json()["code"] == "post_not_published"
    body = analytics_of(api, post_id)
    assert body["analytics"] is None and body["sync"]["status"] == "not_published"


def test_new_posts_are_searched_from_where_the_last_search_saw_them_all(engine_rt, api, quiet_maintenance):  # noqa: F811
    """The search for posts never fetched starts where the previous one saw them all (Redis), so
    it reads the last hour of posts rather than 90 days; without that mark it reads all 90 days."""
    from bridge.services.analytics import NEW_SINCE_KEY
    from bridge.store import analytics as store

    account = connect(engine_rt, "tiktok")
    engine_rt.redis.delete(NEW_SINCE_KEY)
    old = add_post(engine_rt, USER, account, status="published", published_at=utcnow() - timedelta(days=20),
                   platform_post_id="7400000000000000077")
    assert [p["id"] for p in due_posts(engine_rt)] == [old]  # no mark yet: the whole 90 days
    assert [p["id"] for p in due_posts(engine_rt)] == [old]  # found but not fetched: still searched for
    with engine_rt.engine.begin() as conn:
        store.record_failure(conn, engine_rt.tables, old, now=utcnow(), next_sync_at=utcnow() + timedelta(days=1),
                             code="rate_limited", message="later")
    assert due_posts(engine_rt) == []  # and now the search saw them all
    hidden = add_post(engine_rt, USER, account, status="published", published_at=utcnow() - timedelta(days=2),
                      platform_post_id="7400000000000000078")
    recent = add_post(engine_rt, USER, account, status="published", published_at=utcnow() - timedelta(minutes=5),
                      platform_post_id="7400000000000000079")
    assert [p["id"] for p in due_posts(engine_rt)] == [recent]  # from the mark, less an hour
    engine_rt.redis.delete(NEW_SINCE_KEY)  # Redis wiped: the whole window again
    assert [p["id"] for p in due_posts(engine_rt)] == [recent, hidden]
