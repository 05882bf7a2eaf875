"""The analytics reads on the real MariaDB: a post's figures, the summary over a window and the
best times, from rows as the sync writes them."""
from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import insert

from bridge.config import Settings
from bridge.runtime import Runtime
from bridge.services.analytics import engagement_rate
from bridge.services.best_times import DEFAULTS, GENERAL, MIN_POSTS
from bridge.store.db import utcnow
from tests.conftest import auth, base_env
from tests.factories import add_account, add_post

P = "/wp-json/aurareels/v1/social"
USER, OTHER = 77, 78


def synced(rt, post_id, *, views, likes=0, comments=0, shares=0, saves=None, reach=None, at=None, points=1):
    """The analytics row and history the sync would have written for this post."""
    at = at or utcnow()
    with rt.engine.begin() as conn:
        conn.execute(insert(rt.tables.analytics).values(
            social_post_id=post_id, views=views, likes=likes, comments=comments, shares=shares, saves=saves,
            reach=reach, engagement_rate=engagement_rate(views, likes, comments, shares, saves), last_synced_at=at,
            last_attempt_at=at, next_sync_at=at + timedelta(hours=1), created_at=at, updated_at=at))
        for n in range(points):
            share = (n + 1) / points
            conn.execute(insert(rt.tables.analytics_history).values(
                social_post_id=post_id, synced_at=at - timedelta(hours=points - 1 - n), views=int(views * share),
                likes=int(likes * share), comments=int(comments * share), shares=int(shares * share),
                saves=None if saves is None else int(saves * share), reach=None if reach is None else int(reach * share)))


def published(rt, account, when: datetime, user=USER, platform="tiktok", **extra) -> int:
    return add_post(rt, user, account, platform=platform, status="published", published_at=when,
                    platform_post_id=extra.pop("platform_post_id", "7400000000000000001"), **extra)


# ------------------------------------------------------------------------------ one post
def test_post_analytics_before_and_after_a_sync(client, rt):
    account = add_account(rt, USER, "tiktok")
    post_id = published(rt, account, utcnow() - timedelta(hours=5))
    body = client.get(f"{P}/posts/{post_id}/analytics", headers=auth(USER)).get_json()
    assert body == {"success": True, "analytics": None, "history": [],
                    "sync": {"status": "pending", "code": None, "message": None, "last_attempt_at": None,
                             "next_sync_at": None}}
    synced(rt, post_id, views=2000, likes=150, comments=30, shares=20, points=3)
    body = client.get(f"{P}/posts/{post_id}/analytics", headers=auth(USER)).get_json()
    assert {k: body["analytics"][k] for k in ("views", "likes", "comments", "shares", "saves", "reach",
                                               "engagement_rate")} == {
        "views": 2000, "likes": 150, "comments": 30, "shares": 20, "saves": None, "reach": None,
        "engagement_rate": 10.0}
    assert [p["views"] for p in body["history"]] == [666, 1333, 2000]
    assert set(body["history"][0]) >= {"synced_at", "views", "likes", "comments", "shares"}
    assert body["sync"]["status"] == "synced"


def test_post_analytics_of_another_user_or_no_post_is_404(client, rt):
    account = add_account(rt, OTHER, "tiktok")
    post_id = published(rt, account, utcnow(), user=OTHER)
    synced(rt, post_id, views=10)
    for path in (f"{P}/posts/{post_id}/analytics", f"{P}/posts/999999999/analytics"):
        answer = client.get(path, headers=auth(USER))
        assert answer.status_code == 404 and answer.get_json()["code"] == "post_not_found"
        answer = client.post(path + "/refresh", headers=auth(USER))
        assert answer.status_code == 404 and answer.get_json()["success"] is False
    assert client.get(f"{P}/posts/{post_id}/analytics").status_code == 401


# ------------------------------------------------------------------------------- summary
@pytest.fixture
def window_data(rt):
    """Two accounts of the user with posts in March 2026, one before it, one unsynced, and
    another user's post in the same month."""
    tiktok, instagram = add_account(rt, USER, "tiktok"), add_account(rt, USER, "instagram")
    march = datetime(2026, 3, 10, 12, 0, 0)
    posts = {}
    for n in range(12):
        posts[f"tt{n}"] = published(rt, tiktok, march + timedelta(hours=n), caption=f"tt {n}")
        synced(rt, posts[f"tt{n}"], views=1000 + n, likes=10 * n, comments=n, shares=1)
    posts["ig"] = published(rt, instagram, march, platform="instagram", platform_post_id="17920000000000001")
    synced(rt, posts["ig"], views=500, likes=400, comments=50, shares=10, saves=40, reach=450)
    posts["unsynced"] = published(rt, tiktok, march)
    posts["february"] = published(rt, tiktok, datetime(2026, 2, 20, 12, 0, 0))
    synced(rt, posts["february"], views=99999, likes=99999)
    other = add_account(rt, OTHER, "tiktok")
    posts["other"] = published(rt, other, march, user=OTHER)
    synced(rt, posts["other"], views=77777, likes=77777)
    return {"tiktok": tiktok, "instagram": instagram, "other": other, "posts": posts}


MARCH = {"from": "2026-03-01 00:00:00", "to": "2026-03-31 23:59:59"}


def test_summary_totals_per_platform_and_account_and_the_top_ten(client, window_data):
    answer = client.get(f"{P}/analytics/summary", headers=auth(USER), query_string=MARCH)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    body = answer.get_json()
    tt_views = sum(1000 + n for n in range(12))
    tt_likes = sum(10 * n for n in range(12))
    tt_engaged = tt_likes + sum(range(12)) + 12
    assert body["platforms"]["tiktok"] == {
        "posts": 13, "synced_posts": 12, "views": tt_views, "likes": tt_likes, "comments": sum(range(12)),
        "shares": 12, "saves": None, "reach": None, "engagements": tt_engaged,
        "engagement_rate": round(tt_engaged * 100 / tt_views, 2)}
    assert body["platforms"]["instagram"]["engagements"] == 400 + 50 + 10 + 40
    assert body["platforms"]["instagram"]["reach"] == 450 and body["platforms"]["instagram"]["saves"] == 40
    assert body["totals"]["posts"] == 14 and body["totals"]["views"] == tt_views + 500
    assert body["totals"]["saves"] == 40
    assert [(a["id"], a["platform"], a["posts"]) for a in body["accounts"]] == [
        (window_data["tiktok"], "tiktok", 13), (window_data["instagram"], "instagram", 1)]
    assert body["accounts"][0]["account_name"] == f"tiktok of {USER}"
    top = body["top_posts"]
    assert len(top) == 10
    assert top[0]["id"] == window_data["posts"]["ig"] and top[0]["engagements"] == 500
    assert [p["id"] for p in top[1:]] == [window_data["posts"][f"tt{n}"] for n in range(11, 2, -1)]
    assert top[1]["caption"] == "tt 11" and top[1]["published_at"] == "2026-03-10 23:00:00"
    ids = {p["id"] for p in top}
    assert not ids & {window_data["posts"]["february"], window_data["posts"]["other"]}
    assert body["from"] == "2026-03-01 00:00:00" and body["to"] == "2026-03-31 23:59:59"


def test_summary_filters_by_platform_and_account(client, window_data):
    only_ig = client.get(f"{P}/analytics/summary", headers=auth(USER),
                         query_string={**MARCH, "platform": "instagram"}).get_json()
    assert list(only_ig["platforms"]) == ["instagram"] and only_ig["totals"]["posts"] == 1
    one = client.get(f"{P}/analytics/summary", headers=auth(USER),
                     query_string={**MARCH, "account_id": window_data["tiktok"]}).get_json()
    assert list(one["platforms"]) == ["tiktok"] and one["totals"]["posts"] == 13
    assert len(one["top_posts"]) == 10 and all(p["platform"] == "tiktok" for p in one["top_posts"])
    theirs = client.get(f"{P}/analytics/summary", headers=auth(USER),
                        query_string={**MARCH, "account_id": window_data["other"]})
    assert theirs.status_code == 404 and theirs.get_json()["code"] == "account_not_found"


def test_summary_defaults_to_the_last_30_days_and_refuses_bad_windows(client, rt):
    account = add_account(rt, USER, "tiktok")
    synced(rt, published(rt, account, utcnow() - timedelta(days=3)), views=10, likes=1)
    synced(rt, published(rt, account, utcnow() - timedelta(days=40)), views=1000, likes=100)
    body = client.get(f"{P}/analytics/summary", headers=auth(USER)).get_json()
    assert body["totals"]["posts"] == 1 and body["totals"]["views"] == 10
    for query, code in (({"from": "2026-03-02 00:00:00", "to": "2026-03-01 00:00:00"}, "invalid_window"),
                        ({"from": "2024-01-01 00:00:00", "to": "2026-01-01 00:00:00"}, "window_too_long"),
                        ({"from": "yesterday"}, "invalid_datetime"),
                        ({"platform": "myspace"}, "validation_error"),
                        ({"account_id": "-1"}, "validation_error")):
        answer = client.get(f"{P}/analytics/summary", headers=auth(USER), query_string=query)
        assert answer.status_code == 422, (query, answer.status_code)
        assert answer.get_json()["code"] == code


def test_summary_reads_times_in_the_site_zone(rt, shared_engine, database_url):
    from bridge.app import create_app

    madrid = Runtime.from_settings(Settings.from_env(base_env(AURAREELS_DATABASE_URL=database_url,
                                                              AURAREELS_TIMEZONE="Europe/Madrid")),
                                   engine=shared_engine)
    account = add_account(rt, USER, "tiktok")
    synced(rt, published(rt, account, datetime(2026, 3, 1, 0, 30, 0)), views=10)  # 01:30 in Madrid
    client = create_app(runtime=madrid).test_client()
    body = client.get(f"{P}/analytics/summary", headers=auth(USER),
                      query_string={"from": "2026-03-01 01:00:00", "to": "2026-03-01 02:00:00"}).get_json()
    assert body["totals"]["posts"] == 1 and body["from"] == "2026-03-01 00:00:00"


# ----------------------------------------------------------------------------- best times
def test_best_times_with_too_little_data_are_the_platform_defaults(client, rt):
    account = add_account(rt, USER, "instagram")
    for n in range(MIN_POSTS - 1):
        synced(rt, published(rt, account, utcnow() - timedelta(days=n + 1), platform="instagram"), views=100, likes=9)
    body = client.get(f"{P}/analytics/best-times", headers=auth(USER),
                      query_string={"platform": "instagram"}).get_json()
    assert body["basis"] == "default" and body["posts_analyzed"] == MIN_POSTS - 1
    assert [(s["weekday"], s["hour"]) for s in body["slots"]] == list(DEFAULTS["instagram"])
    assert all(s["sample_size"] == 0 for s in body["slots"])
    general = client.get(f"{P}/analytics/best-times", headers=auth(USER)).get_json()
    assert general["basis"] == "default" and [(s["weekday"], s["hour"]) for s in general["slots"]] == list(GENERAL)
    by_account = client.get(f"{P}/analytics/best-times", headers=auth(USER),
                            query_string={"account_id": account}).get_json()
    assert by_account["platform"] == "instagram"
    other = add_account(rt, OTHER, "tiktok")
    answer = client.get(f"{P}/analytics/best-times", headers=auth(USER), query_string={"account_id": other})
    assert answer.status_code == 404 and answer.get_json()["code"] == "account_not_found"


def _last(weekday: int, hour: int, weeks_ago: int) -> datetime:
    """A UTC time `weeks_ago` weeks before the last `weekday` at `hour`."""
    now = utcnow()
    day = now - timedelta(days=(now.weekday() - weekday) % 7 or 7)
    return day.replace(hour=hour, minute=5, second=0) - timedelta(weeks=weeks_ago)


def test_best_times_are_learned_from_own_posts_in_the_site_zone(rt, shared_engine, database_url):
    from bridge.app import create_app

    tokyo = Runtime.from_settings(Settings.from_env(base_env(AURAREELS_DATABASE_URL=database_url,
                                                             AURAREELS_TIMEZONE="Asia/Tokyo")), engine=shared_engine)
    account = add_account(rt, USER, "tiktok")
    # Tuesdays 09:00 UTC (18:00 in Tokyo) engage most, Fridays 03:00 UTC (12:00) next, Mondays
    # 00:00 UTC (09:00) least; one lucky post on a Sunday does not make a slot.
    for weeks_ago in range(4):
        synced(rt, published(rt, account, _last(1, 9, weeks_ago)), views=1000, likes=120)
        synced(rt, published(rt, account, _last(4, 3, weeks_ago)), views=1000, likes=60)
        synced(rt, published(rt, account, _last(0, 0, weeks_ago)), views=1000, likes=10)
    synced(rt, published(rt, account, _last(6, 5, 0)), views=10, likes=10)
    client = create_app(runtime=tokyo).test_client()
    body = client.get(f"{P}/analytics/best-times", headers=auth(USER)).get_json()
    assert body["basis"] == "own_posts" and body["timezone"] == "Asia/Tokyo" and body["posts_analyzed"] == 13
    assert [(s["weekday"], s["hour"], s["sample_size"]) for s in body["slots"]] == [(1, 18, 4), (4, 12, 4), (0, 9, 4)]
    scores = [s["score"] for s in body["slots"]]
    assert scores == sorted(scores, reverse=True) and scores[0] > 1.0 > scores[-1]
    # Another platform of the same user has nothing of its own yet: its defaults.
    assert client.get(f"{P}/analytics/best-times", headers=auth(USER),
                      query_string={"platform": "youtube"}).get_json()["basis"] == "default"
