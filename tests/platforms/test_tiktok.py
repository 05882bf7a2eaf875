"""TikTok contract tests: the client against the emulator over real loopback HTTP, the emulator's
strictness with raw requests, webhook signatures, and a streamed 300 MB upload's memory."""
from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from datetime import datetime, timezone
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from bridge.platforms import tiktok as tt
from bridge.platforms.base import AccountRef, CommentTarget, PostContent, PublishJob, Quota
from bridge.platforms.errors import (
    RateLimited,
    Reauthorize,
    Rejected,
    TokenExpired,
    Transient,
    UnknownOutcome,
)
from bridge.platforms.tiktok import TikTokClient, chunk_bounds, chunk_plan, parse_webhook, verify_webhook
from bridge.sandbox import tiktok as emulator_module
from tests.platforms import oauth_driver
from tests.platforms.conftest import CREDENTIALS, media_url
from tests.platforms.memory import publish_in_child

KEY, SECRET = CREDENTIALS["TIKTOK_CLIENT_ID"], CREDENTIALS["TIKTOK_CLIENT_SECRET"]
API = "open.tiktokapis.com"
UPLOAD = "open-upload.tiktokapis.com"
MB = 1_000_000


# ------------------------------------------------------------------------------------ fixtures
@pytest.fixture
def emu(sandbox):
    emulator = sandbox.emulator("tiktok")
    emulator.register_app(KEY, SECRET)
    return emulator


@pytest.fixture
def client(platform_settings, emu):
    return TikTokClient(platform_settings)


def account_for(emu, user: str = "creator1", scopes=emulator_module.SCOPES) -> AccountRef:
    tokens = emu.issue_token(user, tuple(scopes), client_key=KEY)
    return AccountRef(id=1, account_id=tokens["open_id"], access_token=tokens["access_token"],
                      refresh_token=tokens["refresh_token"], username=user)


@pytest.fixture
def account(emu) -> AccountRef:
    return account_for(emu)


def make_job(client, account, **content) -> PublishJob:
    content.setdefault("caption", "Sunset run #running @friend")
    content.setdefault("video_url", media_url(3 * MB, 20))
    content.setdefault("privacy_level", "PUBLIC")
    post = PostContent(**content)
    job = PublishJob(post_id=7, account=account, content=post, caption=client.compose_caption(post))
    job.sent = []  # (bytes_sent_total, total) reports
    job.progress = lambda done, total: job.sent.append((done, total))
    return job


def step(client, job):
    """One step, with the checkpoint persisted as JSON as the engine does."""
    result = client.publish_step(job)
    job.checkpoint = json.loads(json.dumps(result.checkpoint))
    return result


def run(client, job, emu=None, limit=200):
    """Steps to completion; a processing wait is ended by `emu.process()` (or returned if no emu)."""
    stages = []
    for _ in range(limit):
        stages.append(job.checkpoint.get("stage") or "creator_info")
        result = step(client, job)
        if result.done:
            return result, stages
        if result.wait is not None:
            if emu is None:
                return result, stages
            emu.process()
    raise AssertionError(f"no completion after {limit} steps: {stages[-5:]}")


def tiktok_calls(sandbox, path_part: str) -> list[dict]:
    return [r for r in sandbox.requests("tiktok") if path_part in r["path"]]


# ------------------------------------------------------------------------------------ connect
def test_connect_authorize_exchange_and_profile(client, emu):
    url = client.authorization_url("state-123")
    query = parse_qs(urlsplit(url).query)
    assert query["client_key"] == [KEY] and "client_id" not in query
    assert query["scope"] == ["user.info.basic,video.publish,video.upload,video.list"]

    answer = oauth_driver.consent(url, user="dancer_one")
    assert answer["state"] == "state-123"
    assert answer["scopes"] == "user.info.basic,video.publish,video.upload,video.list"
    assert "*" in answer["code"]  # the driver decoded %2A: the code is sent decoded

    tokens = client.exchange_code(answer["code"])
    assert tokens.access_token.startswith("act.") and tokens.refresh_token.startswith("rft.")
    assert tokens.extra["open_id"] == emu.users["dancer_one"]["open_id"]
    lifetime = (tokens.expires_at - datetime.now(timezone.utc).replace(tzinfo=None)).total_seconds()
    assert 7100 < lifetime <= 7200  # the newer 2 h default, read from expires_in
    [profile] = client.fetch_accounts(tokens)
    assert profile.account_id == emu.users["dancer_one"]["open_id"]
    assert profile.account_name == "Dancer One"
    assert profile.username == "dancer_one"
    assert profile.picture_url.endswith("/dancer_one.jpeg")
    assert profile.metadata["scopes"] == ["user.info.basic", "video.list", "video.publish", "video.upload"]


def test_connect_denied_and_unticked_publish_scope(client, emu):
    denied = oauth_driver.consent(client.authorization_url("s1"), decision="deny")
    assert denied["error"] == "access_denied" and denied["state"] == "s1"

    emu.configure(withheld_scopes=["video.publish"])
    answer = oauth_driver.consent(client.authorization_url("s2"))
    tokens = client.exchange_code(answer["code"])
    with pytest.raises(Rejected) as err:
        client.fetch_accounts(tokens)
    assert err.value.code == "scope_not_granted"


def test_code_is_single_use(client):
    code = oauth_driver.consent(client.authorization_url("s"))["code"]
    client.exchange_code(code)
    with pytest.raises(Reauthorize) as err:
        client.exchange_code(code)
    assert err.value.code == "oauth_invalid_grant"


def test_refresh_rotates_and_old_refresh_token_is_refused(client, emu, account):
    fresh = client.refresh(account.refresh_token)
    assert fresh.refresh_token != account.refresh_token
    assert fresh.refresh_expires_at is not None
    with pytest.raises(Reauthorize):
        client.refresh(account.refresh_token)
    again = client.refresh(fresh.refresh_token)  # the rotated one works once
    assert again.access_token not in (fresh.access_token, account.access_token)


def test_revoke_kills_access_and_refresh_tokens(client, account):
    assert client.revoke(account) is True
    with pytest.raises(TokenExpired):
        client.fetch_metrics(account, "7400000000000000001")
    with pytest.raises(Reauthorize):
        client.refresh(account.refresh_token)


# ------------------------------------------------------------------------------------ publish modes
def test_file_upload_chunked_step_by_step(client, emu, sandbox, account):
    size = 66 * MB  # over 64 MB: must be chunked (10 MB chunks, the last one 16 MB)
    job = make_job(client, account, video_url=media_url(size, 30), allow_duet=False)

    first = step(client, job)
    assert first.checkpoint["stage"] == "init" and first.checkpoint["privacy_level"] == "PUBLIC_TO_EVERYONE"
    assert first.checkpoint["disable_duet"] is True and first.checkpoint["video_size"] == size
    assert not tiktok_calls(sandbox, "/video/init/")

    second = step(client, job)
    assert second.checkpoint["stage"] == "upload"
    assert second.checkpoint["publish_id"].startswith("v_pub_file~")
    assert second.checkpoint["upload_url"].startswith("https://open-upload.tiktokapis.com/video/?upload_id=")
    assert (second.checkpoint["chunk_size"], second.checkpoint["total_chunk_count"]) == (10 * MB, 6)

    stages = []
    while job.checkpoint["stage"] == "upload":
        stages.append(step(client, job).checkpoint["offset"])
    assert stages == [10 * MB, 20 * MB, 30 * MB, 40 * MB, 50 * MB, size]
    assert job.sent[-1] == (size, size)
    puts = tiktok_calls(sandbox, "/video/")
    assert [r["status"] for r in puts if r["method"] == "PUT"] == [206] * 5 + [201]

    waiting = step(client, job)
    assert waiting.wait is not None and not waiting.done
    emu.process()
    done = step(client, job)
    assert done.done and done.platform_post_id.isdigit()
    assert done.platform_post_url == f"https://www.tiktok.com/@creator1/video/{done.platform_post_id}"
    [post] = emu.published
    assert post["bytes_received"] == size and post["caption"] == "Sunset run #running @friend"
    assert post["privacy_level"] == "PUBLIC_TO_EVERYONE" and post["disable_duet"] is True
    # creator_info preceded the init, as TikTok requires
    paths = [r["path"] for r in sandbox.requests("tiktok")]
    assert paths.index("/v2/post/publish/creator_info/query/") < paths.index("/v2/post/publish/video/init/")


def test_small_file_goes_whole(client, emu, account):
    job = make_job(client, account, video_url=media_url(3 * MB, 10))
    result, stages = run(client, job, emu)
    assert stages[:3] == ["creator_info", "init", "upload"] and stages.count("upload") == 1
    assert job.checkpoint["chunk_size"] == 3 * MB and job.checkpoint["total_chunk_count"] == 1
    assert result.done and emu.published[0]["bytes_received"] == 3 * MB


def test_pull_from_url(client, emu, sandbox, account):
    job = make_job(client, account, extra={"tiktok_source": "PULL_FROM_URL"}, privacy_level="FRIENDS")
    result, stages = run(client, job, emu)
    assert stages == ["creator_info", "init", "status", "status"]
    assert job.checkpoint["publish_id"].startswith("v_pub_url~")
    assert not [r for r in sandbox.requests("tiktok") if r["method"] == "PUT"]
    # friends-only posts never get a public post id: the publish id stands for the post
    assert result.done and result.platform_post_id == job.checkpoint["publish_id"]
    assert emu.published[0]["privacy_level"] == "MUTUAL_FOLLOW_FRIENDS"


def test_pull_from_unverified_prefix_is_rejected(client, emu, account):
    emu.configure(verified_url_prefixes=["https://cdn.verified.example/"])
    job = make_job(client, account, extra={"tiktok_source": "PULL_FROM_URL"})
    step(client, job)
    with pytest.raises(Rejected) as err:
        step(client, job)
    assert err.value.code == "media_url_unverified" and err.value.platform_code == "url_ownership_unverified"


def test_photo_carousel(client, emu, account):
    images = [f"https://media.sandbox.aurareels.test/images/p{i}.jpg" for i in range(3)]
    job = make_job(client, account, media_type="carousel", title="Three frames", video_url=None,
                   extra={"image_urls": images, "photo_cover_index": 1})
    assert client.validate(job.content) == []
    result, stages = run(client, job, emu)
    assert stages == ["creator_info", "init", "status", "status"]
    assert job.checkpoint["publish_id"].startswith("p_pub_url~")
    assert result.done and result.platform_post_id.isdigit()
    [post] = emu.published
    assert post["media_type"] == "PHOTO" and post["photo_count"] == 3 and post["title"] == "Three frames"
    assert post["caption"] == job.caption


def test_status_follows_the_clock_then_moderation(client, emu, sandbox, control_url, account):
    job = make_job(client, account)
    while job.checkpoint.get("stage") != "status":
        step(client, job)
    assert step(client, job).wait == client.status_poll_seconds  # processing
    sandbox.clock.advance(emu.config["processing_seconds"])
    moderating = step(client, job)  # complete, but the public post id comes after moderation
    assert moderating.wait == client.moderation_poll_seconds and job.checkpoint["moderation_polls"] == 1
    assert len(emu.published) == 1
    httpx.post(f"{control_url}/process", json={"platform": "tiktok"}).raise_for_status()
    done = step(client, job)
    assert done.done and done.platform_post_id == emu.published[0]["id"]


def test_unknown_privacy_and_privacy_not_offered(client, emu, sandbox, account):
    emu.set_creator("creator1", private=True)
    job = make_job(client, account, privacy_level="PUBLIC")
    with pytest.raises(Rejected) as err:
        step(client, job)
    assert err.value.code == "privacy_level_not_offered"
    assert "followers (FOLLOWERS), friends (FRIENDS), only me (PRIVATE)" in err.value.message
    job = make_job(client, account, privacy_level="followers")
    assert step(client, job).checkpoint["privacy_level"] == "FOLLOWER_OF_CREATOR"
    with pytest.raises(Rejected) as err:
        step(client, make_job(client, account, privacy_level="EVERYONE"))
    assert err.value.code == "privacy_level_unsupported"
    assert not tiktok_calls(sandbox, "/init/")


def test_creator_max_duration_and_interaction_flags(client, emu, sandbox, account):
    emu.set_creator("creator1", max_video_post_duration_sec=60, comment_disabled=True, stitch_disabled=True)
    with pytest.raises(Rejected) as err:
        step(client, make_job(client, account, video_url=media_url(3 * MB, 90)))
    assert err.value.code == "video_too_long" and "60 s" in err.value.message
    job = make_job(client, account, video_url=media_url(3 * MB, 59), allow_comments=True, allow_stitch=True)
    checkpoint = step(client, job).checkpoint
    assert checkpoint["disable_comment"] is True and checkpoint["disable_stitch"] is True
    assert checkpoint["disable_duet"] is False
    run(client, job, emu)
    assert emu.published[0]["disable_comment"] is True


def test_creator_info_errors_answered_with_http_200(client, emu, account):
    emu.set_creator("creator1", banned=True)
    with pytest.raises(Rejected) as err:
        step(client, make_job(client, account))
    assert err.value.code == "user_banned_from_posting" and err.value.http_status == 200

    emu.set_creator("creator1", banned=False)
    emu.configure(daily_post_cap=1)
    run(client, make_job(client, account), emu)
    with pytest.raises(RateLimited) as err:
        step(client, make_job(client, account))
    assert err.value.code == "daily_post_limit" and err.value.retry_after == 3600


@pytest.mark.parametrize("reason", emulator_module.FAIL_REASONS)
def test_every_fail_reason_is_mapped(client, emu, account, reason):
    job = make_job(client, account, extra={"tiktok_source": "PULL_FROM_URL"})
    emu.configure(fail_next_with=reason)
    if reason == "internal":  # documented as retryable: one fresh init, then final
        for _ in range(10):
            if step(client, job).wait is not None:
                emu.process()
            if job.checkpoint["stage"] == "creator_info":
                break
        assert job.checkpoint["attempt"] == 1 and len(job.checkpoint["abandoned"]) == 1
        emu.configure(fail_next_with="internal")
    with pytest.raises((Rejected, Reauthorize)) as err:
        run(client, job, emu)
    cls, code, message = tt.FAIL_REASONS[reason]
    assert isinstance(err.value, cls) and err.value.code == code and err.value.platform_code == reason
    assert re.fullmatch(r"[a-z_]+", code) and message.endswith(".")
    assert set(tt.FAIL_REASONS) == set(emulator_module.FAIL_REASONS)


def test_emulator_checks_file_content(client, emu, account):
    # the client's own check trusts the creator info; the platform checks the uploaded header
    emu.set_creator("creator1", max_video_post_duration_sec=600)
    job = make_job(client, account, video_url=media_url(3 * MB, 30))
    step(client, job)
    emu.set_creator("creator1", max_video_post_duration_sec=20)
    step(client, job)  # init records the creator's limit at this moment
    with pytest.raises(Rejected) as err:
        run(client, job, emu)
    assert err.value.code == "video_duration_invalid"


def test_metrics_and_quota(client, emu, sandbox, account):
    result, _ = run(client, make_job(client, account), emu)
    emu.set_metrics(result.platform_post_id, view_count=1234, like_count=56, comment_count=7, share_count=8)
    metrics = client.fetch_metrics(account, result.platform_post_id)
    assert (metrics.views, metrics.likes, metrics.comments, metrics.shares) == (1234, 56, 7, 8)
    with pytest.raises(Rejected) as err:
        client.fetch_metrics(account, "7400000000000009999")
    assert err.value.code == "post_not_found"
    with pytest.raises(Rejected) as err:
        client.fetch_metrics(account, "v_pub_file~v2-1.1")
    assert err.value.code == "metrics_unavailable"
    before = len(sandbox.requests("tiktok"))
    assert client.quota(account) == Quota(limit=15, used=None, window_seconds=86400, source="bridge")
    assert len(sandbox.requests("tiktok")) == before  # TikTok has no quota endpoint


def test_metrics_grow_with_the_sandbox_clock(client, emu, sandbox, account):
    result, _ = run(client, make_job(client, account), emu)
    first = client.fetch_metrics(account, result.platform_post_id)
    assert (first.views, first.likes, first.saves, first.reach) == (0, 0, None, None)  # TikTok has no saves/reach
    sandbox.clock.advance(90 * 60)
    later = client.fetch_metrics(account, result.platform_post_id)
    sandbox.clock.advance(2 * 86400)
    fresh = client.refresh(account.refresh_token)
    account.access_token = fresh.access_token
    last = client.fetch_metrics(account, result.platform_post_id)
    assert 0 < later.views < last.views and later.likes <= last.likes and later.comments <= last.comments


def test_metrics_without_video_list_are_unavailable(client, emu, account):
    result, _ = run(client, make_job(client, account), emu)
    publish_only = account_for(emu, scopes=[s for s in emulator_module.SCOPES if s != "video.list"])
    with pytest.raises(Rejected) as err:
        client.fetch_metrics(publish_only, result.platform_post_id)
    assert err.value.code == "metrics_unavailable"


# ------------------------------------------------------------------------------------ mapped errors
def test_token_expired_then_refresh_continues(client, emu, sandbox, account):
    job = make_job(client, account)
    sandbox.clock.advance(emu.config["access_token_ttl"] + 1)
    with pytest.raises(TokenExpired) as err:
        step(client, job)
    assert err.value.platform_code == "access_token_invalid"
    fresh = client.refresh(account.refresh_token)
    job.account = AccountRef(id=1, account_id=account.account_id, access_token=fresh.access_token)
    result, _ = run(client, job, emu)
    assert result.done


def test_rate_limited_with_retry_after(client, emu, sandbox, account):
    sandbox.inject("tiktok", kind="rate_limit", path="creator_info", retry_after=42)
    with pytest.raises(RateLimited) as err:
        step(client, make_job(client, account))
    assert err.value.retry_after == 42 and err.value.platform_code == "rate_limit_exceeded"
    emu.configure(rate_creator_info_per_min=1)
    job = make_job(client, account)
    step(client, job)
    with pytest.raises(RateLimited) as err:
        step(client, make_job(client, account))
    assert err.value.retry_after == 60  # TikTok sends no Retry-After of its own


@pytest.mark.parametrize("name,cls,code", [
    ("spam_risk_user_banned_from_posting", Rejected, "user_banned_from_posting"),
    ("unaudited_client_can_only_post_to_private_accounts", Rejected, "unaudited_app_public_account"),
    ("privacy_level_option_mismatch", Rejected, "privacy_level_not_offered"),
    ("reached_active_user_cap", RateLimited, "app_daily_user_cap"),
    ("spam_risk_too_many_posts", RateLimited, "daily_post_limit"),
    ("scope_not_authorized", Reauthorize, "scope_not_granted"),
    ("invalid_param", Rejected, "invalid_request"),
])
def test_named_errors_at_init(client, sandbox, account, name, cls, code):
    job = make_job(client, account)
    step(client, job)
    sandbox.inject("tiktok", kind="error", error=name, path="/video/init/")
    with pytest.raises(cls) as err:
        step(client, job)
    assert type(err.value) is cls and err.value.code == code and err.value.platform_code == name
    assert "act." not in err.value.message


def test_transient_5xx_on_a_read_is_retried(client, emu, sandbox, account):
    job = make_job(client, account, extra={"tiktok_source": "PULL_FROM_URL"})
    step(client, job), step(client, job)
    sandbox.inject("tiktok", kind="status", status=503, path="/status/fetch/")
    with pytest.raises(Transient):
        step(client, job)
    emu.process()
    assert step(client, job).done


def test_5xx_on_file_init_is_unknown_then_redone_safely(client, emu, sandbox, account):
    job = make_job(client, account)
    step(client, job)
    before = dict(job.checkpoint)
    sandbox.inject("tiktok", kind="lost", path="/video/init/")
    with pytest.raises(UnknownOutcome):
        step(client, job)
    settled = client.reconcile(job)  # an upload nobody can feed never publishes: redo the init
    assert settled.checkpoint == before
    job.checkpoint = settled.checkpoint
    result, _ = run(client, job, emu)
    assert result.done and len(emu.published) == 1
    orphans = [p for p in emu.publishes.values() if p["status"] == "PROCESSING_UPLOAD"]
    assert len(orphans) == 1 and orphans[0]["uploaded_bytes"] == 0


def test_lost_pull_init_is_found_by_reconcile(client, emu, sandbox, account):
    job = make_job(client, account, extra={"tiktok_source": "PULL_FROM_URL"})
    step(client, job)
    sandbox.inject("tiktok", kind="lost", path="/video/init/")
    with pytest.raises(UnknownOutcome):
        step(client, job)
    with pytest.raises(UnknownOutcome) as err:  # not published (yet): cannot be settled
        client.reconcile(job)
    assert err.value.code == "unconfirmed"
    emu.process()
    settled = client.reconcile(job)
    assert settled.checkpoint["stage"] == "published"
    job.checkpoint = settled.checkpoint
    done = step(client, job)
    assert done.done and done.platform_post_id == emu.published[0]["id"] and len(emu.published) == 1


def test_timeout_on_init_is_unknown_outcome(client, sandbox, account):
    job = make_job(client, account, extra={"tiktok_source": "PULL_FROM_URL"})
    step(client, job)
    sandbox.inject("tiktok", kind="timeout", path="/video/init/", delay=1.5)
    with pytest.raises(UnknownOutcome) as err:
        step(client, job)
    assert err.value.code == "timeout"


def test_failed_chunk_is_resent_and_lost_chunk_resumes_from_reported_offset(client, emu, sandbox, account):
    size = 70 * MB  # 7 chunks of 10 MB
    job = make_job(client, account, video_url=media_url(size, 30))
    step(client, job), step(client, job), step(client, job)
    assert job.checkpoint["offset"] == 10 * MB

    sandbox.inject("tiktok", kind="status", status=500, method="PUT", path="^/video/$")
    with pytest.raises(Transient):
        step(client, job)
    assert job.checkpoint["offset"] == 10 * MB
    step(client, job)  # the same chunk again
    assert job.checkpoint["offset"] == 20 * MB

    sandbox.inject("tiktok", kind="lost", method="PUT", path="^/video/$")  # lands, its answer is lost
    with pytest.raises(Transient):
        step(client, job)
    assert emu.publishes[job.checkpoint["publish_id"]]["uploaded_bytes"] == 30 * MB
    resumed = step(client, job)  # TikTok answers 416 with its progress: adopt it
    assert resumed.checkpoint["offset"] == 30 * MB
    assert [r["status"] for r in sandbox.requests("tiktok") if r["method"] == "PUT"][-1] == 416
    result, _ = run(client, job, emu)
    assert result.done and emu.published[0]["bytes_received"] == size


def test_expired_upload_url_restarts_with_a_fresh_init(client, emu, sandbox, account):
    job = make_job(client, account, video_url=media_url(70 * MB, 30))
    step(client, job), step(client, job), step(client, job)
    first = job.checkpoint["publish_id"]
    sandbox.clock.advance(emu.config["upload_url_ttl"] + 1)
    restarted = step(client, job)
    assert restarted.checkpoint == {"stage": "creator_info", "restarts": 1, "attempt": 0, "abandoned": [first]}
    result, _ = run(client, job, emu)
    assert result.done and len(emu.published) == 1 and emu.published[0]["publish_id"] != first


def test_upload_url_known_to_be_expired_is_not_used(client, emu, sandbox, account):
    job = make_job(client, account)
    step(client, job), step(client, job)
    job.checkpoint["upload_expires_at"] = int(time.time()) - 1
    puts = len([r for r in sandbox.requests("tiktok") if r["method"] == "PUT"])
    assert step(client, job).checkpoint["stage"] == "creator_info"
    assert len([r for r in sandbox.requests("tiktok") if r["method"] == "PUT"]) == puts


# ------------------------------------------------------------------------------------ requirements
def test_caption_counts_utf16_units(client):
    ok = PostContent(caption="😀" * 1100, video_url=media_url(), privacy_level="PUBLIC")  # 2200 UTF-16 units
    assert client.validate(ok) == []
    long = PostContent(caption="😀" * 1100 + "a", video_url=media_url(), privacy_level="PUBLIC")
    [issue] = client.validate(long)
    assert issue.code == "caption_too_long" and "2201 UTF-16 units" in issue.message
    assert client.validate(PostContent(caption="x", privacy_level="friends")) == []
    assert [i.code for i in client.validate(PostContent(caption="x", privacy_level="EVERYONE"))] == \
        ["privacy_level_unsupported"]


def test_photo_requirements(client):
    png = PostContent(caption="x", media_type="image", video_url="https://media.sandbox.aurareels.test/images/a.png",
                      privacy_level="FRIENDS")
    assert [i.code for i in client.validate(png)] == ["image_format_unsupported"]
    many = PostContent(caption="x" * 3000, media_type="carousel", title="t" * 91, privacy_level="FRIENDS",
                       extra={"image_urls": [f"https://m.example/{i}.jpg" for i in range(36)]})
    assert sorted(i.code for i in client.validate(many)) == ["invalid_option", "title_too_long", "too_many_photos"]


# ------------------------------------------------------------------------------------ privacy, as TikTok rules it
def test_no_privacy_choice_is_refused_never_sent_as_public(client, emu, sandbox, account):
    [issue] = client.validate(PostContent(caption="x", video_url=media_url()))
    assert (issue.field, issue.code) == ("privacy_level", "privacy_level_required")
    with pytest.raises(Rejected) as err:
        step(client, make_job(client, account, privacy_level=None))
    assert err.value.code == "privacy_level_required"
    assert "everyone (PUBLIC)" in err.value.message  # names what the account offers
    assert not tiktok_calls(sandbox, "/init/") and not emu.published


def test_branded_content_cannot_be_private(client, emu, sandbox, account, sandbox_url):
    branded = {"brand_content_toggle": True}
    for level in ("PRIVATE", "SELF_ONLY"):
        [issue] = client.validate(PostContent(caption="x", video_url=media_url(), privacy_level=level, extra=branded))
        assert issue.code == "branded_content_private"
    assert client.validate(PostContent(caption="x", video_url=media_url(), privacy_level="FRIENDS",
                                       extra=branded)) == []
    with pytest.raises(Rejected) as err:
        step(client, make_job(client, account, privacy_level="PRIVATE", extra=branded))
    assert err.value.code == "branded_content_private" and not tiktok_calls(sandbox, "/init/")
    refused = call(sandbox_url, "/v2/post/publish/video/init/", account.access_token,
                   init_body(brand_content_toggle=True))  # SELF_ONLY
    assert_api_error(refused, 400, "invalid_param", "Branded content cannot be private")


def test_unaudited_app_is_offered_self_only_and_nothing_else(client, emu, sandbox, account, sandbox_url):
    emu.configure(unaudited=True)
    emu.set_creator("creator1", private=True)
    assert client.account_options(account)["privacy_level_options"] == ["SELF_ONLY"]
    with pytest.raises(Rejected) as err:
        step(client, make_job(client, account, privacy_level="FRIENDS"))
    assert err.value.code == "privacy_level_not_offered" and "it offers: only me (PRIVATE)" in err.value.message
    result, _ = run(client, make_job(client, account, privacy_level="PRIVATE"), emu)
    assert result.done and emu.published[0]["privacy_level"] == "SELF_ONLY"
    sandbox.clock.advance(60)
    friends = call(sandbox_url, "/v2/post/publish/video/init/", account.access_token,
                   init_body(privacy_level="MUTUAL_FOLLOW_FRIENDS"))
    assert_api_error(friends, 403, "privacy_level_option_mismatch")


def test_tiktok_has_no_first_comment_and_sends_nothing_for_one(client, sandbox, account):
    assert TikTokClient.first_comment is None
    assert [i.code for i in client.first_comment_issues("First!")] == ["first_comment_unsupported"]
    before = len(sandbox.requests("tiktok"))
    with pytest.raises(Rejected) as refused:
        client.post_comment(account, CommentTarget("v_pub_1"), "First!")
    assert refused.value.code == "first_comment_unsupported" and len(sandbox.requests("tiktok")) == before


def test_account_options_come_from_the_creator_info(client, emu, account):
    emu.set_creator("creator1", max_video_post_duration_sec=180, duet_disabled=True)
    options = client.account_options(account)
    assert options["privacy_level_options"] == ["PUBLIC_TO_EVERYONE", "MUTUAL_FOLLOW_FRIENDS", "SELF_ONLY"]
    assert options["privacy_level_required"] is True and options["max_video_post_duration_sec"] == 180
    assert (options["comment_disabled"], options["duet_disabled"], options["stitch_disabled"]) == (False, True, False)
    emu.set_creator("creator1", private=True)
    assert client.account_options(account)["privacy_level_options"] == \
        ["FOLLOWER_OF_CREATOR", "MUTUAL_FOLLOW_FRIENDS", "SELF_ONLY"]


def test_chunk_plan_follows_tiktoks_rules():
    assert chunk_plan(4_999_999) == (4_999_999, 1)
    assert chunk_plan(64 * MB) == (64 * MB, 1)
    chunk, count = chunk_plan(50_000_123 + 64 * MB)
    assert (chunk, count) == (10 * MB, 11)
    assert chunk_bounds(114_000_123, chunk, count, 100 * MB) == (100 * MB, 114_000_122)  # last takes the rest
    # the documented example: 50,000,123 bytes in 10,000,000-byte chunks -> 5 chunks, last 10,000,123
    assert 50_000_123 // (10 * MB) == 5 and chunk_bounds(50_000_123, 10 * MB, 5, 40 * MB) == (40 * MB, 50_000_122)
    big_chunk, big_count = chunk_plan(40_000_000_000)
    assert big_count == 1000 and 5 * MB <= big_chunk <= 64 * MB
    assert 40_000_000_000 - (big_count - 1) * big_chunk <= 128 * MB


# ------------------------------------------------------------------------------------ webhooks
def test_verify_webhook(emu):
    body = json.dumps({"client_key": KEY, "event": "post.publish.complete", "create_time": 1700000000,
                       "user_openid": "-000x", "content": json.dumps({"publish_id": "v_pub_url~1"})}).encode()
    now = emu.now()
    header = emu.sign_webhook(body, client_key=KEY)
    assert verify_webhook(SECRET, header, body, now)
    assert not verify_webhook(SECRET, header, body + b" ", now)
    assert not verify_webhook("other-secret", header, body, now)
    assert not verify_webhook(SECRET, header, body, now + 301)
    assert verify_webhook(SECRET, header, body, now + 299)
    assert not verify_webhook(SECRET, "t=abc,s=00", body, now)
    assert not verify_webhook(SECRET, "", body, now)
    assert not verify_webhook(SECRET, header.split(",")[0], body, now)
    stamp = str(int(now))
    manual = hmac.new(SECRET.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    assert verify_webhook(SECRET, f"t={stamp}, s={manual}", body, now)
    assert parse_webhook(body)["content"] == {"publish_id": "v_pub_url~1"}


def test_emulator_records_signed_publish_events(client, emu, account):
    run(client, make_job(client, account, extra={"tiktok_source": "PULL_FROM_URL"}), emu)
    events = [e["event"] for e in emu.webhooks]
    assert events == ["post.publish.complete", "post.publish.publicly_available"]
    body = json.dumps(emu.webhooks[-1]).encode()
    assert verify_webhook(SECRET, emu.sign_webhook(body, client_key=KEY), body, emu.now())
    assert parse_webhook(body)["content"]["post_id"] == emu.published[0]["id"]


# ------------------------------------------------------------------------------------ strictness
def api_url(sandbox_url: str, path: str, host: str = API) -> str:
    return f"{sandbox_url}/{host}{path}"


def call(sandbox_url, path, token=None, body=None, method="POST", **kw):
    headers = kw.pop("headers", {})
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if body is not None:
        headers.setdefault("Content-Type", "application/json; charset=UTF-8")
        kw["content"] = json.dumps(body)
    return httpx.request(method, api_url(sandbox_url, path), headers=headers, timeout=10, **kw)


def assert_api_error(response, status, code, message_part=""):
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"]["code"] == code and message_part in body["error"]["message"], body
    assert body["error"]["log_id"]


def assert_oauth_error(response, error, description_part=""):
    assert response.status_code == 200, response.text  # TikTok may answer OAuth errors with 200
    body = response.json()
    assert body["error"] == error and description_part in body["error_description"], body


def new_code(client, emu):
    return oauth_driver.consent(client.authorization_url("s"))["code"]


def init_body(size=10 * MB, chunk=5 * MB, count=2, **post_info):
    return {"post_info": {"title": "t", "privacy_level": "SELF_ONLY", **post_info},
            "source_info": {"source": "FILE_UPLOAD", "video_size": size, "chunk_size": chunk,
                            "total_chunk_count": count}}


def upload_target(sandbox_url, token, size=10 * MB, chunk=5 * MB, count=2):
    answer = call(sandbox_url, "/v2/post/publish/video/init/", token, init_body(size, chunk, count))
    assert answer.status_code == 200, answer.text
    url = answer.json()["data"]["upload_url"]
    return f"{sandbox_url}/{UPLOAD}/video/?{urlsplit(url).query}", answer.json()["data"]["publish_id"]


def put(url, first, last, total, length=None, content_type="video/mp4"):
    size = last - first + 1
    return httpx.put(url, content=b"\0" * (size if length is None else length), timeout=20, headers={
        "Content-Type": content_type, "Content-Range": f"bytes {first}-{last}/{total}"})


class TestStrictness:
    def test_token_endpoint_refuses_json(self, sandbox_url, client, emu):
        answer = httpx.post(api_url(sandbox_url, "/v2/oauth/token/"), json={
            "client_key": KEY, "client_secret": SECRET, "code": new_code(client, emu),
            "grant_type": "authorization_code", "redirect_uri": client.redirect_uri})
        assert_oauth_error(answer, "invalid_request", "application/x-www-form-urlencoded")

    def test_token_endpoint_wants_client_key_not_client_id(self, sandbox_url, client, emu):
        form = {"client_id": KEY, "client_secret": SECRET, "code": new_code(client, emu),
                "grant_type": "authorization_code", "redirect_uri": client.redirect_uri}
        assert_oauth_error(httpx.post(api_url(sandbox_url, "/v2/oauth/token/"), data=form), "invalid_request",
                           "client_key is required")
        form = {**form, "client_key": KEY, "client_secret": "wrong"}
        assert_oauth_error(httpx.post(api_url(sandbox_url, "/v2/oauth/token/"), data=form), "invalid_client")
        emu.configure(auto_register=False)
        form = {**form, "client_key": "unregistered-key", "client_secret": "s"}
        assert_oauth_error(httpx.post(api_url(sandbox_url, "/v2/oauth/token/"), data=form), "invalid_client")

    def test_an_app_is_held_to_its_first_secret(self, sandbox_url, emu):
        form = {"client_key": "new-app", "client_secret": "first", "grant_type": "refresh_token",
                "refresh_token": "rft.unknown"}
        assert_oauth_error(httpx.post(api_url(sandbox_url, "/v2/oauth/token/"), data=form), "invalid_grant")
        form["client_secret"] = "second"
        assert_oauth_error(httpx.post(api_url(sandbox_url, "/v2/oauth/token/"), data=form), "invalid_client")

    def test_code_expiry_and_redirect_uri_binding(self, sandbox_url, sandbox, client, emu):
        form = {"client_key": KEY, "client_secret": SECRET, "code": new_code(client, emu),
                "grant_type": "authorization_code", "redirect_uri": client.redirect_uri + "x"}
        assert_oauth_error(httpx.post(api_url(sandbox_url, "/v2/oauth/token/"), data=form), "invalid_grant",
                           "redirect_uri")
        form = {**form, "code": new_code(client, emu), "redirect_uri": client.redirect_uri}
        sandbox.clock.advance(emu.config["code_ttl"] + 1)
        assert_oauth_error(httpx.post(api_url(sandbox_url, "/v2/oauth/token/"), data=form), "invalid_grant",
                           "Authorization code is expired.")

    def test_reused_refresh_token(self, sandbox_url, account):
        form = {"client_key": KEY, "client_secret": SECRET, "grant_type": "refresh_token",
                "refresh_token": account.refresh_token}
        first = httpx.post(api_url(sandbox_url, "/v2/oauth/token/"), data=form)
        assert first.status_code == 200 and set(first.json()) == {
            "access_token", "expires_in", "open_id", "refresh_expires_in", "refresh_token", "scope", "token_type"}
        assert first.json()["expires_in"] == 7200 and first.json()["refresh_expires_in"] == 180 * 86400
        assert_oauth_error(httpx.post(api_url(sandbox_url, "/v2/oauth/token/"), data=form), "invalid_grant")

    def test_space_separated_scopes_are_refused(self, sandbox_url, client):
        url = client.authorization_url("s").replace("%2C", "+")
        answer = httpx.get(url, follow_redirects=False)
        assert answer.status_code == 302
        query = parse_qs(urlsplit(answer.headers["Location"]).query)
        assert query["error"] == ["invalid_scope"] and query["state"] == ["s"]

    def test_paths_need_the_trailing_slash_and_the_right_method(self, sandbox_url, account):
        assert_api_error(call(sandbox_url, "/v2/post/publish/creator_info/query", account.access_token, {}), 404,
                         "not_found")
        assert_api_error(call(sandbox_url, "/v2/post/publish/creator_info/query/", account.access_token,
                              method="GET"), 405, "method_not_allowed")

    def test_expired_revoked_and_missing_tokens(self, sandbox_url, sandbox, emu, account, client):
        path = "/v2/post/publish/creator_info/query/"
        assert_api_error(call(sandbox_url, path, None, {}), 401, "access_token_invalid")
        other = account_for(emu, "creator2")
        client.revoke(other)
        assert_api_error(call(sandbox_url, path, other.access_token, {}), 401, "access_token_invalid")
        sandbox.clock.advance(7201)
        assert_api_error(call(sandbox_url, path, account.access_token, {}), 401, "access_token_invalid")

    def test_scope_not_granted(self, sandbox_url, emu):
        basic = account_for(emu, scopes=("user.info.basic",))
        assert_api_error(call(sandbox_url, "/v2/post/publish/creator_info/query/", basic.access_token, {}), 401,
                         "scope_not_authorized")
        assert_api_error(call(sandbox_url, "/v2/user/info/?fields=open_id,follower_count", basic.access_token,
                              method="GET"), 401, "scope_not_authorized")

    def test_json_endpoints_refuse_form_bodies(self, sandbox_url, account):
        answer = httpx.post(api_url(sandbox_url, "/v2/post/publish/status/fetch/"), data={"publish_id": "x"},
                            headers={"Authorization": f"Bearer {account.access_token}"})
        assert_api_error(answer, 400, "invalid_params", "application/json")

    def test_creator_info_rate_limit_per_token(self, sandbox_url, sandbox, account):
        path = "/v2/post/publish/creator_info/query/"
        for _ in range(20):
            assert call(sandbox_url, path, account.access_token, {}).status_code == 200
        assert_api_error(call(sandbox_url, path, account.access_token, {}), 429, "rate_limit_exceeded")
        sandbox.clock.advance(60)
        assert call(sandbox_url, path, account.access_token, {}).status_code == 200

    def test_init_rate_limit_per_token(self, sandbox_url, account):
        for _ in range(6):
            assert call(sandbox_url, "/v2/post/publish/video/init/", account.access_token,
                        init_body()).status_code == 200
        assert_api_error(call(sandbox_url, "/v2/post/publish/video/init/", account.access_token, init_body()), 429,
                         "rate_limit_exceeded")

    def test_init_privacy_must_be_offered(self, sandbox_url, emu, account):
        emu.set_creator("creator1", private=True)
        for body in (init_body(privacy_level="PUBLIC_TO_EVERYONE"), init_body(privacy_level="PUBLIC")):
            assert_api_error(call(sandbox_url, "/v2/post/publish/video/init/", account.access_token, body), 403,
                             "privacy_level_option_mismatch")
        body = init_body()
        del body["post_info"]["privacy_level"]
        assert_api_error(call(sandbox_url, "/v2/post/publish/video/init/", account.access_token, body), 403,
                         "privacy_level_option_mismatch")

    def test_init_title_limit_in_utf16_units_and_unknown_fields(self, sandbox_url, account):
        path = "/v2/post/publish/video/init/"
        assert call(sandbox_url, path, account.access_token, init_body(title="😀" * 1100)).status_code == 200
        assert_api_error(call(sandbox_url, path, account.access_token, init_body(title="😀" * 1100 + "a")), 400,
                         "invalid_param", "2200 UTF-16")
        assert_api_error(call(sandbox_url, path, account.access_token, init_body(caption="x")), 400,
                         "invalid_param", "post_info.caption")

    @pytest.mark.parametrize("size,chunk,count,why", [
        (10 * MB, 5 * MB, 3, "rounded down"),  # count not floor(size / chunk)
        (20 * MB, 4 * MB, 5, "between 5 MB and 64 MB"),  # chunk under 5 MB
        (200 * MB, 65 * MB, 3, "between 5 MB and 64 MB"),  # chunk over 64 MB
        (4 * MB, 2 * MB, 2, "uploaded whole"),  # under 5 MB must go whole
        (6 * MB, 7 * MB, 1, "not above video_size"),
        (5_000 * MB, 10 * MB, 500, "video_size exceeds"),
    ])
    def test_init_chunk_rules(self, sandbox_url, account, size, chunk, count, why):
        assert_api_error(call(sandbox_url, "/v2/post/publish/video/init/", account.access_token,
                              init_body(size, chunk, count)), 400, "invalid_param", why)

    def test_pull_needs_https_on_a_verified_prefix(self, sandbox_url, account):
        for url in ("http://media.sandbox.aurareels.test/videos/a.mp4", "https://elsewhere.example/a.mp4",
                    "https://93.184.216.34/a.mp4"):
            body = {"post_info": {"privacy_level": "SELF_ONLY"},
                    "source_info": {"source": "PULL_FROM_URL", "video_url": url}}
            assert_api_error(call(sandbox_url, "/v2/post/publish/video/init/", account.access_token, body), 403,
                             "url_ownership_unverified")

    def test_chunks_out_of_order_overlapping_or_misfit(self, sandbox_url, account):
        url, _ = upload_target(sandbox_url, account.access_token, 15 * MB, 5 * MB, 3)
        late = put(url, 5 * MB, 10 * MB - 1, 15 * MB)  # second chunk first
        assert late.status_code == 416 and late.headers["Content-Range"] == f"bytes */{15 * MB}"
        assert put(url, 0, 4 * MB - 1, 15 * MB).status_code == 400  # wrong size for a chunk
        first = put(url, 0, 5 * MB - 1, 15 * MB)
        assert first.status_code == 206 and first.headers["Content-Range"] == f"bytes 0-{5 * MB - 1}/{15 * MB}"
        again = put(url, 0, 5 * MB - 1, 15 * MB)  # overlapping: already received
        assert_api_error(again, 416, "invalid_params", "inconsistent")
        assert again.headers["Content-Range"] == f"bytes 0-{5 * MB - 1}/{15 * MB}"
        assert put(url, 5 * MB, 10 * MB - 1, 16 * MB).status_code == 400  # wrong total
        assert put(url, 5 * MB, 10 * MB - 1, 15 * MB, content_type="application/octet-stream").status_code == 400
        assert put(url, 5 * MB, 10 * MB - 1, 15 * MB).status_code == 206
        done = put(url, 10 * MB, 15 * MB - 1, 15 * MB)
        assert done.status_code == 201 and done.headers["Content-Range"] == f"bytes 0-{15 * MB - 1}/{15 * MB}"

    def test_content_length_must_match_the_range(self, sandbox_url, account):
        url, _ = upload_target(sandbox_url, account.access_token)
        assert_api_error(put(url, 0, 5 * MB - 1, 10 * MB, length=5 * MB - 10), 400, "invalid_params",
                         "Content-Length")

    def test_upload_url_expires_and_must_match(self, sandbox_url, sandbox, account):
        url, _ = upload_target(sandbox_url, account.access_token)
        assert_api_error(put(url.replace("upload_token=", "upload_token=x"), 0, 5 * MB - 1, 10 * MB), 404,
                         "not_found")
        sandbox.clock.advance(3601)
        assert put(url, 0, 5 * MB - 1, 10 * MB).status_code == 403

    def test_status_of_unknown_or_foreign_publish(self, sandbox_url, emu, account):
        _, publish_id = upload_target(sandbox_url, account.access_token)
        assert_api_error(call(sandbox_url, "/v2/post/publish/status/fetch/", account.access_token,
                              {"publish_id": "v_pub_file~nope"}), 400, "invalid_publish_id")
        other = account_for(emu, "creator2")
        assert_api_error(call(sandbox_url, "/v2/post/publish/status/fetch/", other.access_token,
                              {"publish_id": publish_id}), 400, "token_not_authorized_for_specified_publish_id")
        status = call(sandbox_url, "/v2/post/publish/status/fetch/", account.access_token,
                      {"publish_id": publish_id}).json()["data"]
        assert status == {"status": "PROCESSING_UPLOAD", "fail_reason": "", "publicaly_available_post_id": [],
                          "uploaded_bytes": 0, "downloaded_bytes": 0}

    def test_daily_post_cap(self, sandbox_url, emu, account):
        emu.configure(daily_post_cap=2)
        for _ in range(2):
            upload_target(sandbox_url, account.access_token)
        info = call(sandbox_url, "/v2/post/publish/creator_info/query/", account.access_token, {})
        assert_api_error(info, 200, "spam_risk_too_many_posts")  # HTTP 200 here, on purpose
        assert_api_error(call(sandbox_url, "/v2/post/publish/video/init/", account.access_token, init_body()), 403,
                         "spam_risk_too_many_posts")

    def test_unaudited_app_posts_only_to_private_accounts(self, sandbox_url, emu, account):
        emu.configure(unaudited=True)
        assert_api_error(call(sandbox_url, "/v2/post/publish/video/init/", account.access_token, init_body()), 403,
                         "unaudited_client_can_only_post_to_private_accounts")
        emu.set_creator("creator1", private=True)
        assert call(sandbox_url, "/v2/post/publish/video/init/", account.access_token, init_body()).status_code == 200

    def test_inbox_upload_takes_source_info_only_and_caps_pending_shares(self, sandbox_url, sandbox, emu, account):
        path = "/v2/post/publish/inbox/video/init/"
        body = init_body()
        assert_api_error(call(sandbox_url, path, account.access_token, body), 400, "invalid_param", "source_info only")
        del body["post_info"]
        for _ in range(5):
            answer = call(sandbox_url, path, account.access_token, body)
            assert answer.json()["data"]["publish_id"].startswith("v_inbox_file~")
        sandbox.clock.advance(60)  # past the 6 per minute of the init endpoints
        assert_api_error(call(sandbox_url, path, account.access_token, body), 403, "spam_risk_too_many_pending_share")
        publish = account_for(emu, scopes=("video.publish",))
        assert_api_error(call(sandbox_url, path, publish.access_token, body), 401, "scope_not_authorized")

    def test_photo_rules(self, sandbox_url, emu, account):
        def photo(images, **info):
            return {"post_info": {"privacy_level": "SELF_ONLY", **info}, "post_mode": "DIRECT_POST",
                    "media_type": "PHOTO", "source_info": {"source": "PULL_FROM_URL", "photo_cover_index": 0,
                                                           "photo_images": images}}
        path = "/v2/post/publish/content/init/"
        jpg = "https://media.sandbox.aurareels.test/images/a.jpg"
        assert_api_error(call(sandbox_url, path, account.access_token, photo([jpg] * 36)), 400, "invalid_param")
        assert_api_error(call(sandbox_url, path, account.access_token, photo([jpg], title="t" * 91)), 400,
                         "invalid_param", "90 UTF-16")
        png = call(sandbox_url, path, account.access_token, photo([jpg.replace(".jpg", ".png")]))
        emu.process()
        status = call(sandbox_url, "/v2/post/publish/status/fetch/", account.access_token,
                      {"publish_id": png.json()["data"]["publish_id"]}).json()["data"]
        assert (status["status"], status["fail_reason"]) == ("FAILED", "file_format_check_failed")


# ------------------------------------------------------------------------------------ memory
def test_300mb_file_upload_streams_in_bounded_memory(platform_env, control_url, emu):
    size = 300 * MB
    tokens = emu.issue_token("creator1", client_key=KEY)
    started = time.perf_counter()
    report = publish_in_child(
        "tiktok", platform_env,
        {"id": 1, "account_id": tokens["open_id"], "access_token": tokens["access_token"]},
        {"caption": "big one", "video_url": media_url(size, 60, name="big.mp4"), "privacy_level": "PUBLIC"},
        control_url)
    elapsed = time.perf_counter() - started
    print(f"\nTikTok 300 MB FILE_UPLOAD: peak RSS growth {report['growth_mib']:.1f} MiB (peak "
          f"{report['rss_before_kb'] / 1024:.1f} -> {report['rss_peak_kb'] / 1024:.1f} MiB), {report['steps']} steps, "
          f"{elapsed:.1f} s")
    assert report["done"] and report["bytes_reported"] == size
    assert report["growth_mib"] < 64
    [post] = emu.published
    assert post["bytes_received"] == size and post["id"] == report["platform_post_id"]
