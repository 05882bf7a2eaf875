"""What derives from the platform registry at the API: the OpenAPI enums, the /health warnings of the
platforms, and the app-wide upload limit YouTube adds to each channel's."""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from bridge.config import PLATFORMS
from bridge.platforms.registry import privacy_values
from bridge.services.quota import day_start, next_day_start, project_usage, usage
from bridge.store.db import utcnow
from tests.factories import add_account, add_post


def test_openapi_enums_are_the_registrys(client):
    spec = client.get("/openapi.json").get_json()
    connect = spec["paths"]["/aurareels/v1/social/accounts/connect/{platform}"]["post"]
    [param] = [p for p in connect["parameters"] if p["name"] == "platform"]
    assert param["schema"]["enum"] == list(PLATFORMS)
    publish = spec["components"]["schemas"]["Publish"]["properties"]
    assert publish["privacy_level"]["enum"] == list(privacy_values())


def test_health_warns_of_a_linkedin_version_near_its_sunset(app, rt):
    today = utcnow().date()
    near = f"{today.year - 1}{today.month:02d}"  # sunset this month: within 30 days, or just past
    rt.settings = replace(rt.settings, platform_env={**rt.settings.platform_env, "AURAREELS_LINKEDIN_VERSION": near})
    body = app.test_client().get("/aurareels/v1/social/health").get_json()
    [warning] = body["checks"]["platforms"]["warnings"]
    assert near in warning and "AURAREELS_LINKEDIN_VERSION" in warning
    rt.settings = replace(rt.settings, platform_env={})
    body = app.test_client().get("/aurareels/v1/social/health").get_json()
    assert body["checks"]["platforms"] == {"ok": True, "ms": body["checks"]["platforms"]["ms"], "warnings": []}


def test_youtube_uploads_count_against_the_projects_daily_bucket_across_channels(rt, monkeypatch):
    monkeypatch.setenv("AURAREELS_PROJECT_QUOTA_YOUTUBE", "3")
    channels = [add_account(rt, 40 + n, "youtube", account_id=f"UC{n}") for n in range(3)]
    since = day_start("America/Los_Angeles")
    for n, channel in enumerate(channels):
        add_post(rt, 40 + n, channel, platform="youtube", status="published", published_at=since + timedelta(
            minutes=5 + n))
    # one from before the Pacific midnight does not count
    add_post(rt, 40, channels[0], platform="youtube", status="published", published_at=since - timedelta(minutes=1))
    project = project_usage(rt, "youtube")
    assert (project.limit, project.used, project.source) == (3, 3, "project")
    assert project.next_slot_at == next_day_start("America/Los_Angeles")
    fresh = add_account(rt, 50, "youtube", account_id="UCfresh")
    view = usage(rt, fresh, "youtube")  # this channel uploaded nothing, the project is out
    assert view.used >= view.limit and view.next_slot_at == project.next_slot_at
    monkeypatch.setenv("AURAREELS_PROJECT_QUOTA_YOUTUBE", "100")
    assert usage(rt, fresh, "youtube").source == "bridge"
    assert project_usage(rt, "tiktok") is None


def test_pacific_day_boundaries():
    winter = datetime(2026, 12, 3, 9, 0)  # 01:00 in Los Angeles (PST, UTC-8)
    assert day_start("America/Los_Angeles", winter) == datetime(2026, 12, 3, 8, 0)
    assert next_day_start("America/Los_Angeles", winter) == datetime(2026, 12, 4, 8, 0)
    summer = datetime(2026, 7, 1, 6, 0)  # 23:00 on June 30 (PDT, UTC-7)
    assert day_start("America/Los_Angeles", summer) == datetime(2026, 6, 30, 7, 0)
