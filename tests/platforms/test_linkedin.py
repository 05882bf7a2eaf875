"""LinkedIn contract tests against its emulator over real loopback HTTP (no mocks)."""
from __future__ import annotations

import json
import time
from datetime import date, datetime, timedelta, timezone
from urllib.parse import parse_qs, quote, urlsplit

import httpx
import pytest

from bridge.config import ConfigError, Settings
from bridge.platforms.base import AccountRef, CommentTarget, PostContent, PublishJob, StepResult
from bridge.platforms.errors import RateLimited, Reauthorize, Rejected, TokenExpired, Transient, UnknownOutcome
from bridge.platforms.linkedin import API_VERSION, LinkedInClient, little_text, seconds_to_utc_midnight, sunset_of
from tests.platforms import oauth_driver
from tests.platforms.conftest import CREDENTIALS, media_url
from tests.platforms.memory import publish_in_child

VERSION = {"LinkedIn-Version": API_VERSION, "X-Restli-Protocol-Version": "2.0.0"}
READER_SCOPES = "openid profile w_member_social r_member_social"  # an app with LinkedIn's approval


def at(sandbox, day: date) -> None:
    """Move the sandbox clock to noon UTC of `day`."""
    target = datetime(day.year, day.month, day.day, 12, tzinfo=timezone.utc).timestamp()
    sandbox.clock.advance(target - sandbox.clock.now())
MiB = 1024 * 1024


# ------------------------------------------------------------------------------------ fixtures
@pytest.fixture
def linkedin(sandbox):
    emu = sandbox.emulator("linkedin")
    emu.configure(auto_register=False)  # strict: only the app registered here
    emu.register_app(CREDENTIALS["LINKEDIN_CLIENT_ID"], CREDENTIALS["LINKEDIN_CLIENT_SECRET"])
    return emu


@pytest.fixture
def client(platform_settings) -> LinkedInClient:
    return LinkedInClient(platform_settings)


def connect(client: LinkedInClient, user: str = "creator1"):
    """The whole browser flow: authorize URL -> consent -> code -> tokens -> profile."""
    params = oauth_driver.consent(client.authorization_url(state="st-1"), user=user)
    assert params["state"] == "st-1"
    tokens = client.exchange_code(params["code"])
    [profile] = client.fetch_accounts(tokens)
    account = AccountRef(id=1, account_id=profile.account_id, access_token=tokens.access_token,
                         refresh_token=tokens.refresh_token, metadata=profile.metadata)
    return account, tokens, profile


@pytest.fixture
def account(linkedin, client) -> AccountRef:
    return connect(client)[0]


def job_for(account: AccountRef, client: LinkedInClient, **content) -> PublishJob:
    post = PostContent(**content)
    sent: list[int] = []
    job = PublishJob(post_id=1, account=account, content=post, caption=client.compose_caption(post),
                     progress=lambda done, total: sent.append(done))
    job.sent = sent  # type: ignore[attr-defined]
    return job


def step(client: LinkedInClient, job: PublishJob) -> StepResult:
    """One step, with the checkpoint persisted as JSON the way the engine stores it."""
    result = client.publish_step(job)
    job.checkpoint = json.loads(json.dumps(result.checkpoint))
    return result


def drive(client: LinkedInClient, job: PublishJob, linkedin, limit: int = 100) -> tuple[StepResult, list[str]]:
    """Run steps to completion; a processing wait finishes processing through the emulator."""
    stages = []
    for _ in range(limit):
        stages.append(job.checkpoint.get("stage", "start"))
        result = step(client, job)
        if result.done:
            return result, stages
        if result.wait is not None:
            linkedin.process()
    raise AssertionError(f"not done after {limit} steps: {stages[-5:]}")


def video_job(account, client, size=10 * MiB, duration=20.0, **extra):
    return job_for(account, client, caption="Launch day (finally) @team #launch", media_type="video",
                   video_url=media_url(size, duration), title="Launch", **extra)


# ------------------------------------------------------------------------------------ OAuth
def test_connect_issues_60_day_token_and_member_profile(linkedin, client, sandbox):
    url = client.authorization_url(state="st-1")
    query = parse_qs(urlsplit(url).query)
    assert query["scope"] == ["openid profile email w_member_social"]
    assert query["response_type"] == ["code"] and query["client_id"] == [CREDENTIALS["LINKEDIN_CLIENT_ID"]]

    account, tokens, profile = connect(client)

    assert tokens.expires_at - datetime.utcnow() > timedelta(days=59, hours=23)
    assert tokens.refresh_token and tokens.refresh_expires_at - datetime.utcnow() > timedelta(days=364)
    assert tokens.scope == "email,openid,profile,w_member_social"  # comma-separated in the answer
    member = linkedin.member("creator1")
    assert profile.account_id == member["sub"]
    assert profile.account_name == member["name"] and profile.email == member["email"]
    assert profile.picture_url == member["picture"]
    assert profile.metadata["author_urn"] == f"urn:li:person:{member['sub']}"


def test_denied_consent_redirects_with_linkedin_error(linkedin, client):
    params = oauth_driver.consent(client.authorization_url(state="st-2"), decision="deny")
    assert params["error"] == "user_cancelled_authorize" and params["state"] == "st-2"
    assert "code" not in params


def test_code_is_single_use(linkedin, client):
    params = oauth_driver.consent(client.authorization_url(state="s"))
    client.exchange_code(params["code"])
    with pytest.raises(Reauthorize) as caught:
        client.exchange_code(params["code"])
    assert caught.value.platform_code == "invalid_grant"


def test_refresh_rotates_and_never_extends_the_grant(linkedin, client, sandbox):
    _, tokens, _ = connect(client)
    sandbox.clock.advance(86400 * 30)
    renewed = client.refresh(tokens.refresh_token)

    assert renewed.access_token != tokens.access_token
    assert renewed.refresh_token and renewed.refresh_token != tokens.refresh_token
    # 365 days from the original grant, not from the refresh
    assert abs((renewed.refresh_expires_at - tokens.refresh_expires_at).total_seconds() + 86400 * 30) < 5
    with pytest.raises(Reauthorize):
        client.refresh(tokens.refresh_token)
    assert client.refresh(renewed.refresh_token).access_token


def test_refresh_without_rotation_keeps_the_refresh_token(linkedin, client):
    linkedin.configure(rotate_refresh_tokens=False)
    _, tokens, _ = connect(client)
    first = client.refresh(tokens.refresh_token)
    assert first.refresh_token == tokens.refresh_token
    assert client.refresh(tokens.refresh_token).access_token not in (tokens.access_token, first.access_token)


def test_self_serve_app_gets_no_refresh_token(linkedin, client):
    linkedin.configure(issue_refresh_tokens=False)
    _, tokens, _ = connect(client)
    assert tokens.refresh_token is None and tokens.refresh_expires_at is None


def test_refresh_token_ends_with_the_grant(linkedin, client, sandbox):
    _, tokens, _ = connect(client)
    sandbox.clock.advance(86400 * 366)
    with pytest.raises(Reauthorize):
        client.refresh(tokens.refresh_token)


def test_revoke_is_not_offered_and_member_removal_needs_reconnect(linkedin, client, sandbox):
    account, tokens, _ = connect(client)
    before = len(sandbox.requests("linkedin"))
    assert client.revoke(account) is False
    assert len(sandbox.requests("linkedin")) == before  # nothing was sent

    linkedin.revoke_member("creator1")  # the member removes the app in their LinkedIn settings
    with pytest.raises(Reauthorize) as caught:
        step(client, job_for(account, client, caption="hello", media_type="text"))
    assert caught.value.code == "token_revoked"
    with pytest.raises(Reauthorize):
        client.refresh(tokens.refresh_token)


# ------------------------------------------------------------------------------------ publishing
def test_text_post_escapes_little_text_and_maps_visibility(linkedin, client, account):
    caption = "Big news (really): 50% off_today! Ask @support {now} #Sale #summer_fun ~ * <b>"
    job = job_for(account, client, caption=caption, hashtags=["promo"], media_type="text",
                  privacy_level="MUTUAL_FOLLOW_FRIENDS")

    result, stages = drive(client, job, linkedin)

    assert stages == ["start"]  # one call
    assert result.platform_post_id.startswith("urn:li:share:")
    assert result.platform_post_url == f"https://www.linkedin.com/feed/update/{result.platform_post_id}/"
    [published] = linkedin.published
    assert published["text"] == f"{caption}\n\n#promo"  # nothing cut at a reserved character
    assert published["visibility"] == "CONNECTIONS"
    stored = linkedin.posts[result.platform_post_id]["commentary"]
    assert "{hashtag|\\#|Sale}" in stored and "\\#summer\\_fun" in stored and "\\(really\\)" in stored


def test_first_comment_is_a_comment_of_the_member_under_the_post(linkedin, client, account):
    result, _ = drive(client, job_for(account, client, caption="Hiring!", media_type="text"), linkedin)
    target = CommentTarget(result.platform_post_id, result.platform_post_url)
    comment = client.post_comment(account, target, "Apply here: https://aurareels.com/jobs (remote ok)")
    assert comment.startswith("urn:li:comment:(urn:li:activity:")
    [made] = linkedin.snapshot()["comments"]
    assert made == {"id": comment, "object": result.platform_post_id, "author": f"urn:li:person:{account.account_id}",
                    "message": "Apply here: https://aurareels.com/jobs (remote ok)"}
    reader = AccountRef(id=1, account_id=account.account_id, access_token=linkedin.issue_token("creator1",
                                                                                              READER_SCOPES))
    assert client.find_comment(reader, target, "Apply here: https://aurareels.com/jobs (remote ok)", None) == comment
    assert client.find_comment(reader, target, "not there", None) is None


def test_first_comment_cannot_be_checked_without_r_member_social(linkedin, client, account):
    result, _ = drive(client, job_for(account, client, caption="Hiring!", media_type="text"), linkedin)
    with pytest.raises(UnknownOutcome) as unknown:
        client.find_comment(account, CommentTarget(result.platform_post_id), "First!", None)
    assert unknown.value.code == "unconfirmed"


def test_little_text_unescaped_is_cut_by_linkedin(linkedin):
    # what the escaping prevents: LinkedIn silently cuts at the first unescaped reserved character
    assert linkedin.render("Hello (world) #tag")[0] == "Hello "
    assert linkedin.render(little_text("Hello (world) #tag"))[0] == "Hello (world) #tag"


def test_video_post_step_by_step(linkedin, client, account):
    job = video_job(account, client, size=10 * MiB)

    first = step(client, job)
    assert first.checkpoint["stage"] == "upload" and first.checkpoint["video"].startswith("urn:li:video:")
    assert [p[:2] for p in first.checkpoint["parts"]] == [[0, 4 * MiB - 1], [4 * MiB, 8 * MiB - 1],
                                                          [8 * MiB, 10 * MiB - 1]]
    for _ in range(3):
        assert step(client, job).wait is None
    assert job.checkpoint["stage"] == "finalize" and len(job.checkpoint["etags"]) == 3
    assert job.sent == [4 * MiB, 8 * MiB, 10 * MiB]
    assert step(client, job).checkpoint["stage"] == "processing"

    waiting = step(client, job)
    assert waiting.wait and waiting.checkpoint["stage"] == "processing"
    with pytest.raises(Rejected):  # LinkedIn refuses a post with a video still PROCESSING
        client.step_post(job, dict(job.checkpoint, stage="post"))
    assert linkedin.process() == 1
    assert step(client, job).checkpoint["stage"] == "post"
    done = step(client, job)

    assert done.done and done.platform_post_id.startswith("urn:li:ugcPost:")
    video = linkedin.videos[job.checkpoint["video"]]
    assert video["received"] == 10 * MiB and video["status"] == "AVAILABLE"
    [published] = linkedin.published
    assert published["media"] == job.checkpoint["video"]
    assert published["text"] == "Launch day (finally) @team #launch"
    assert linkedin.posts[done.platform_post_id]["content"]["media"]["title"] == "Launch"
    assert step(client, job).done  # a re-run after completion sends nothing


def test_processing_follows_the_clock(linkedin, client, account, sandbox):
    linkedin.configure(processing_seconds=120)
    job = video_job(account, client, size=1 * MiB)
    while job.checkpoint.get("stage") != "processing":
        step(client, job)
    assert step(client, job).wait is not None
    sandbox.clock.advance(121)
    assert step(client, job).checkpoint["stage"] == "post"
    assert step(client, job).done


def test_processing_failure_is_rejected_with_the_reason(linkedin, client, account):
    job = video_job(account, client, size=1 * MiB, duration=1.0)  # shorter than LinkedIn's 3 s
    with pytest.raises(Rejected) as caught:
        drive(client, job, linkedin)
    assert caught.value.code == "video_processing_failed" and "duration" in caught.value.message

    scripted = video_job(account, client, size=1 * MiB)
    while scripted.checkpoint.get("stage") != "processing":
        step(client, scripted)
    assert linkedin.process(video=scripted.checkpoint["video"], fail=True, reason="Unsupported codec") == 1
    with pytest.raises(Rejected) as caught:
        step(client, scripted)
    assert "Unsupported codec" in caught.value.message
    assert linkedin.published == []


def test_caption_over_limit_is_refused_before_uploading(linkedin, client, account):
    job = job_for(account, client, caption="😀" * 1500 + "!", media_type="video", video_url=media_url(1 * MiB))
    assert client.validate(job.content)[0].code == "caption_too_long"  # 3001 UTF-16 units, 1501 code points
    with pytest.raises(Rejected) as caught:
        step(client, job)
    assert caught.value.code == "caption_too_long"
    assert linkedin.videos == {}


def test_validate_knows_linkedin_limits(client):
    from bridge.platforms.base import MediaInfo

    codes = {i.code for i in client.validate(PostContent(caption="x", privacy_level="SELF_ONLY", media_type="video"),
                                             MediaInfo(size=10_000, content_type="video/quicktime", duration_sec=2))}
    assert codes == {"privacy_level_unsupported", "video_format_unsupported", "video_too_short", "video_too_small"}
    assert [i.code for i in client.validate(PostContent(caption="x", media_type="image"))] == ["media_type_unsupported"]
    assert client.validate(PostContent(caption="x", media_type="text", privacy_level="CONNECTIONS")) == []


def _login(linkedin, account: AccountRef, scopes: str, recorded: bool = True) -> AccountRef:
    """The same member with a token of other scopes (apps LinkedIn approved for more products)."""
    metadata = {"author_urn": account.metadata["author_urn"]}
    if recorded:
        metadata["scopes"] = ",".join(sorted(scopes.split()))
    return AccountRef(id=1, account_id=account.account_id, metadata=metadata,
                      access_token=linkedin.issue_token("creator1", scopes))


def test_metrics_and_quota(linkedin, client, account, sandbox):
    result, _ = drive(client, job_for(account, client, caption="metrics", media_type="text"), linkedin)
    urn = result.platform_post_id
    linkedin.engage(urn, likes=12, comments=3, shares=2, impressions=480, reached=300)

    # A self-serve app (Share on LinkedIn: w_member_social) may publish but read nothing back.
    before = len(sandbox.requests("linkedin"))
    with pytest.raises(Rejected) as caught:
        client.fetch_metrics(account, urn)
    assert caught.value.code == "metrics_unavailable"
    assert len(sandbox.requests("linkedin")) == before  # known from the granted scopes: no call

    analytics = _login(linkedin, account, "openid profile w_member_social r_member_postAnalytics")
    full = client.fetch_metrics(analytics, urn)
    assert (full.likes, full.comments, full.views, full.shares, full.reach) == (12, 3, 480, 2, 300)

    social = client.fetch_metrics(_login(linkedin, account, "openid profile w_member_social r_member_social"), urn)
    assert (social.likes, social.comments, social.views, social.reach) == (12, 3, 0, None)

    # Scopes not recorded (an older connection): LinkedIn's 403s say what the login lacks.
    with pytest.raises(Rejected) as caught:
        client.fetch_metrics(_login(linkedin, account, "openid profile w_member_social", recorded=False), urn)
    assert caught.value.code == "metrics_unavailable"
    assert client.fetch_metrics(_login(linkedin, account, "openid w_member_social r_member_postAnalytics",
                                       recorded=False), urn) == full
    assert client.quota(account) is None  # LinkedIn reports no quota


def test_social_actions_need_r_member_social(api):
    """The emulator refuses what LinkedIn refuses: socialActions without the restricted scope."""
    urn = api.post().headers["x-restli-id"]
    answer = api.call("GET", f"/rest/socialActions/{quote(urn, safe='')}")
    assert answer.status_code == 403 and answer.json()["code"] == "ACCESS_DENIED"


def test_metrics_grow_with_the_sandbox_clock(linkedin, client, account, sandbox):
    result, _ = drive(client, job_for(account, client, caption="growing", media_type="text"), linkedin)
    login = _login(linkedin, account, "openid profile w_member_social r_member_postAnalytics")
    first = client.fetch_metrics(login, result.platform_post_id)
    assert (first.views, first.likes) == (0, 0)  # nothing in the first hour
    sandbox.clock.advance(6 * 3600)
    later = client.fetch_metrics(_login(linkedin, account, "openid profile w_member_social r_member_postAnalytics"),
                                 result.platform_post_id)
    sandbox.clock.advance(3 * 86400)
    last = client.fetch_metrics(_login(linkedin, account, "openid profile w_member_social r_member_postAnalytics"),
                                result.platform_post_id)
    assert 0 < later.views < last.views and later.likes <= last.likes and last.reach <= last.views


# ------------------------------------------------------------------------------------ errors
def test_expired_token_then_refresh(linkedin, client, sandbox):
    account, tokens, _ = connect(client)
    sandbox.clock.advance(5_184_000 + 1)
    with pytest.raises(TokenExpired) as caught:
        step(client, job_for(account, client, caption="late", media_type="text"))
    assert caught.value.code == "token_expired"
    account.access_token = client.refresh(tokens.refresh_token).access_token
    assert step(client, job_for(account, client, caption="late", media_type="text")).done


def test_daily_member_limit_waits_until_utc_midnight(linkedin, client, account):
    linkedin.configure(member_daily_limit=1)
    assert step(client, job_for(account, client, caption="one", media_type="text")).done
    with pytest.raises(RateLimited) as caught:
        step(client, job_for(account, client, caption="two", media_type="text"))
    assert abs(caught.value.retry_after - seconds_to_utc_midnight()) < 5
    assert "midnight UTC" in caught.value.message


def test_rate_limit_honours_retry_after_when_sent(linkedin, client, account, sandbox):
    linkedin.configure(retry_after_header=True)
    sandbox.inject("linkedin", kind="rate_limit", path="/rest/posts", retry_after=120)
    with pytest.raises(RateLimited) as caught:
        step(client, job_for(account, client, caption="x", media_type="text"))
    assert caught.value.retry_after == 120 and caught.value.platform_code == "TOO_MANY_REQUESTS"


def test_duplicate_is_rejected(linkedin, client, account):
    assert step(client, job_for(account, client, caption="same words", media_type="text")).done
    with pytest.raises(Rejected) as caught:
        step(client, job_for(account, client, caption="same words", media_type="text"))
    assert caught.value.code == "duplicate_content" and caught.value.http_status == 422


def test_access_denied_names_the_missing_permission(linkedin, client, account, sandbox):
    sandbox.inject("linkedin", kind="error", error="ACCESS_DENIED", path="/rest/posts")
    with pytest.raises(Rejected) as caught:
        step(client, job_for(account, client, caption="x", media_type="text"))
    assert caught.value.code == "permission_missing" and "w_member_social" in caught.value.message


def test_sunset_version_is_rejected_for_the_operator(linkedin, client, account, sandbox):
    at(sandbox, sunset_of(API_VERSION) + timedelta(days=1))  # the default version has left its year
    account.access_token = linkedin.issue_token("creator1")  # the connected token would have expired
    with pytest.raises(Rejected) as caught:
        step(client, job_for(account, client, caption="x", media_type="text"))
    assert caught.value.code == "api_version_unsupported" and caught.value.http_status == 426
    assert "AURAREELS_LINKEDIN_VERSION" in caught.value.message
    newer = LinkedInClient(client.settings, api_version=f"{sunset_of(API_VERSION).year}01")
    assert step(newer, job_for(account, newer, caption="x", media_type="text")).done


def test_version_is_a_setting_and_the_default_is_live_on_the_release_date(linkedin, platform_env, sandbox):
    at(sandbox, date(2026, 12, 3))
    default = LinkedInClient(Settings.from_env(platform_env))
    account, _, _ = connect(default)
    assert step(default, job_for(account, default, caption="on release day", media_type="text")).done
    # 202601 is still answered on the release date but is sunset on 2027-01-15 (426 from then on)
    old = LinkedInClient(Settings.from_env({**platform_env, "AURAREELS_LINKEDIN_VERSION": "202601"}))
    assert old.api_version == "202601" and sunset_of("202601") == date(2027, 1, 15)
    assert step(old, job_for(account, old, caption="old but live", media_type="text")).done
    at(sandbox, date(2027, 1, 16))
    account.access_token = linkedin.issue_token("creator1")
    with pytest.raises(Rejected) as caught:
        step(old, job_for(account, old, caption="too late", media_type="text"))
    assert caught.value.http_status == 426
    assert step(default, job_for(account, default, caption="still fine", media_type="text")).done
    with pytest.raises(ConfigError) as bad:
        Settings.from_env({**platform_env, "AURAREELS_LINKEDIN_VERSION": "2026-07"})
    assert "AURAREELS_LINKEDIN_VERSION" in str(bad.value)


def test_health_warns_thirty_days_before_the_sunset(platform_env):
    client = LinkedInClient(Settings.from_env({**platform_env, "AURAREELS_LINKEDIN_VERSION": "202601"}))
    assert client.health_warnings(date(2026, 12, 15)) == []
    [warning] = client.health_warnings(date(2026, 12, 16))  # 30 days before 2027-01-15
    assert "202601" in warning and "2027-01-15" in warning and "AURAREELS_LINKEDIN_VERSION" in warning
    assert client.health_warnings(date(2027, 2, 1))  # and after it
    assert LinkedInClient(Settings.from_env(platform_env)).health_warnings(date(2026, 12, 3)) == []


def test_5xx_on_a_read_is_transient_and_on_a_create_unknown(linkedin, client, account, sandbox):
    job = video_job(account, client, size=1 * MiB)
    while job.checkpoint.get("stage") != "processing":
        step(client, job)
    sandbox.inject("linkedin", kind="status", status=503, path="/rest/videos/")
    with pytest.raises(Transient):
        step(client, job)
    linkedin.process()
    step(client, job)
    sandbox.inject("linkedin", kind="status", status=500, path="/rest/posts")
    with pytest.raises(UnknownOutcome):
        step(client, job)
    assert linkedin.published == []  # the 500 came before anything was created: reconcile proves it
    resumed = client.reconcile(job)
    assert resumed.checkpoint["stage"] == "post" and resumed.checkpoint["retried"]
    job.checkpoint = resumed.checkpoint
    assert step(client, job).done and len(linkedin.published) == 1


def test_lost_create_is_found_by_reconcile(linkedin, client, account, sandbox):
    account.access_token = linkedin.issue_token("creator1", READER_SCOPES)  # the app may list posts
    job = job_for(account, client, caption="Lost (but found) #once", media_type="text")
    sandbox.inject("linkedin", kind="lost", path="/rest/posts", method="POST")
    with pytest.raises(UnknownOutcome):
        step(client, job)
    [published] = linkedin.published

    settled = client.reconcile(job)

    assert settled.done and settled.platform_post_id == published["id"]
    assert len(linkedin.published) == 1


def test_timed_out_create_that_did_not_happen_is_sent_again(linkedin, client, account, sandbox):
    job = video_job(account, client, size=1 * MiB)
    while job.checkpoint.get("stage") != "post":
        if step(client, job).wait:
            linkedin.process()
    sandbox.inject("linkedin", kind="timeout", path="/rest/posts", method="POST")
    with pytest.raises(UnknownOutcome):
        step(client, job)
    job.checkpoint = client.reconcile(job).checkpoint
    assert step(client, job).done and len(linkedin.published) == 1


def test_duplicate_after_an_unseen_lost_create_is_ours(linkedin, client, account, sandbox):
    job = job_for(account, client, caption="listing lags behind", media_type="text")
    sandbox.inject("linkedin", kind="lost", path="/rest/posts", method="POST")
    with pytest.raises(UnknownOutcome):
        step(client, job)
    # the author's list did not show it yet, so reconcile said "send again"; LinkedIn names the original
    job.checkpoint = {"stage": "post", "retried": True}
    result = step(client, job)
    assert result.done and result.platform_post_id == linkedin.published[0]["id"]
    assert len(linkedin.published) == 1


def test_reconcile_without_r_member_social_falls_back_to_the_duplicate_answer(linkedin, client, account, sandbox):
    # Share-on-LinkedIn apps may not list the member's posts (403): the lost post is settled by
    # sending it again, which LinkedIn answers by naming the post that did go out
    job = job_for(account, client, caption="cannot list", media_type="text")
    sandbox.inject("linkedin", kind="lost", path="/rest/posts", method="POST")
    with pytest.raises(UnknownOutcome):
        step(client, job)
    settled = client.reconcile(job)
    assert settled.checkpoint == {"stage": "post", "retried": True}
    job.checkpoint = settled.checkpoint
    result = step(client, job)
    assert result.done and result.platform_post_id == linkedin.published[0]["id"] and len(linkedin.published) == 1


def test_lost_post_that_did_not_happen_without_r_member_social_goes_out_once(linkedin, client, account, sandbox):
    job = job_for(account, client, caption="never arrived", media_type="text")
    sandbox.inject("linkedin", kind="timeout", path="/rest/posts", method="POST")
    with pytest.raises(UnknownOutcome):
        step(client, job)
    job.checkpoint = client.reconcile(job).checkpoint
    assert step(client, job).done and len(linkedin.published) == 1


def test_metrics_without_r_member_social_are_unavailable_not_a_reconnect(linkedin, client, account):
    result, _ = drive(client, job_for(account, client, caption="no reads", media_type="text"), linkedin)
    with pytest.raises(Rejected) as caught:
        client.fetch_metrics(account, result.platform_post_id)
    assert caught.value.code == "metrics_unavailable" and "connect" not in caught.value.message


def test_lost_finalize_and_lost_init_are_reconciled(linkedin, client, account, sandbox):
    job = video_job(account, client, size=1 * MiB)
    sandbox.inject("linkedin", kind="lost", path="/rest/videos", method="POST")  # init took effect
    with pytest.raises(UnknownOutcome):
        step(client, job)
    assert client.reconcile(job).checkpoint == {"stage": "init"}  # an empty upload never publishes: redo
    step(client, job)
    step(client, job)
    assert job.checkpoint["stage"] == "finalize"

    sandbox.inject("linkedin", kind="timeout", path="/rest/videos", method="POST")  # did not happen
    with pytest.raises(UnknownOutcome):
        step(client, job)
    assert client.reconcile(job).checkpoint["stage"] == "finalize"
    sandbox.inject("linkedin", kind="lost", path="/rest/videos", method="POST")  # happened
    with pytest.raises(UnknownOutcome):
        step(client, job)
    job.checkpoint = client.reconcile(job).checkpoint
    assert job.checkpoint["stage"] == "processing"
    result, _ = drive(client, job, linkedin)
    assert result.done and len(linkedin.videos) == 2 and len(linkedin.published) == 1


def test_failed_part_resumes_with_that_part(linkedin, client, account, sandbox):
    job = video_job(account, client, size=9 * MiB)
    step(client, job)
    step(client, job)
    sandbox.inject("linkedin", kind="status", status=503, path="/dms-uploads/")
    with pytest.raises(Transient):
        step(client, job)
    assert len(job.checkpoint["etags"]) == 1
    result, _ = drive(client, job, linkedin)
    assert result.done and linkedin.videos[job.checkpoint["video"]]["received"] == 9 * MiB


def test_expired_upload_urls_start_a_fresh_upload(linkedin, client, account, sandbox):
    job = video_job(account, client, size=5 * MiB)
    step(client, job)
    step(client, job)
    sandbox.clock.advance(3601)
    assert step(client, job).checkpoint == {"stage": "init", "restarts": 1}
    result, _ = drive(client, job, linkedin)
    assert result.done and len(linkedin.published) == 1
    orphan, fresh = linkedin.videos.values()
    assert orphan["status"] == "WAITING_UPLOAD" and fresh["received"] == 5 * MiB


# ------------------------------------------------------------------------------------ strictness
@pytest.fixture
def api(sandbox_url, linkedin):
    """Raw calls to the emulated hosts with a valid member token."""
    token = linkedin.issue_token("creator1")
    sub = linkedin.member("creator1")["sub"]

    class Api:
        author = f"urn:li:person:{sub}"
        auth = {"Authorization": f"Bearer {token}"}

        def call(self, method, path, host="api.linkedin.com", headers=None, **kw):
            return httpx.request(method, f"{sandbox_url}/{host}{path}", headers={**self.auth, **VERSION,
                                                                                  **(headers or {})}, timeout=10, **kw)

        def post(self, commentary="hello", **fields):
            body = {"author": self.author, "commentary": commentary, "visibility": "PUBLIC",
                    "distribution": {"feedDistribution": "MAIN_FEED", "targetEntities": [],
                                     "thirdPartyDistributionChannels": []},
                    "lifecycleState": "PUBLISHED", "isReshareDisabledByAuthor": False, **fields}
            return self.call("POST", "/rest/posts", json=body)

        def init_video(self, size):
            answer = self.call("POST", "/rest/videos?action=initializeUpload", json={"initializeUploadRequest": {
                "owner": self.author, "fileSizeBytes": size, "uploadCaptions": False, "uploadThumbnail": False}})
            assert answer.status_code == 200, answer.text
            return answer.json()["value"]

        def put(self, instruction, size=None):
            url = urlsplit(instruction["uploadUrl"])
            length = size if size is not None else instruction["lastByte"] - instruction["firstByte"] + 1
            return httpx.put(f"{sandbox_url}/{url.hostname}{url.path}?{url.query}", content=b"\0" * length,
                             headers={"Content-Type": "application/octet-stream"}, timeout=10)

        def finalize(self, value, etags):
            return self.call("POST", "/rest/videos?action=finalizeUpload", json={"finalizeUploadRequest": {
                "video": value["video"], "uploadToken": value["uploadToken"], "uploadedPartIds": etags}})

    return Api()


def test_strict_missing_linkedin_version(api):
    answer = api.call("POST", "/rest/posts", headers={"LinkedIn-Version": ""}, json={})
    assert answer.status_code == 400
    assert answer.json() == {"status": 400, "code": "VERSION_MISSING", "message": "A version must be present. Please "
                             "specify a version by adding the LinkedIn-Version header."}


def test_strict_sunset_version(api, sandbox):
    answer = api.call("GET", "/rest/posts", headers={"LinkedIn-Version": "202401"},
                      params={"q": "author", "author": api.author})
    assert answer.status_code == 426
    assert answer.json() == {"status": 426, "code": "NONEXISTENT_VERSION",
                             "message": "Requested version 20240101 is not active"}
    future = api.call("GET", "/rest/posts", headers={"LinkedIn-Version": "209901"},
                      params={"q": "author", "author": api.author})
    assert future.status_code == 426  # not released yet
    at(sandbox, date(2027, 1, 14))
    assert api.call("POST", "/rest/posts", headers={"LinkedIn-Version": "202601"}, json={}).status_code != 426
    at(sandbox, date(2027, 1, 15))
    assert api.call("POST", "/rest/posts", headers={"LinkedIn-Version": "202601"}, json={}).status_code == 426


def test_strict_missing_restli_protocol_version(api):
    answer = api.call("POST", "/rest/posts", headers={"X-Restli-Protocol-Version": ""}, json={})
    assert answer.status_code == 400 and answer.json()["code"] == "ILLEGAL_ARGUMENT"
    assert "X-Restli-Protocol-Version: 2.0.0" in answer.json()["message"]


def test_strict_commentary_over_3000_utf16_units(api, linkedin):
    answer = api.post("😀" * 1500 + "!")  # 1501 code points, 3001 UTF-16 units
    assert answer.status_code == 422
    body = answer.json()
    assert body["code"] == "UNPROCESSABLE_ENTITY"
    assert body["errorDetails"]["inputErrors"][0]["input"]["inputPath"]["fieldPath"] == "/commentary"
    assert body["errorDetails"]["inputErrors"][0]["code"] == "MAX_LENGTH_EXCEEDED"
    assert api.post("😀" * 1500).status_code == 201 and len(linkedin.published) == 1


def test_strict_finalize_needs_every_part_and_their_etags_in_order(api, linkedin):
    value = api.init_video(6 * MiB)
    first = api.put(value["uploadInstructions"][0])
    assert first.status_code == 201
    missing = api.finalize(value, [first.headers["ETag"]])
    assert missing.status_code == 400
    assert missing.json() == {"status": 400, "code": "BAD_REQUEST",
                              "message": f"Part 1 (bytes {4 * MiB}-{6 * MiB - 1}) was not uploaded"}
    second = api.put(value["uploadInstructions"][1])
    swapped = api.finalize(value, [second.headers["ETag"], first.headers["ETag"]])
    assert swapped.status_code == 400 and "uploadedPartIds do not match" in swapped.json()["message"]
    in_order = [first.headers["ETag"], second.headers["ETag"]]
    wrong_token = api.call("POST", "/rest/videos?action=finalizeUpload", json={"finalizeUploadRequest": {
        "video": value["video"], "uploadToken": "", "uploadedPartIds": in_order}})
    assert wrong_token.status_code == 400 and "upload token" in wrong_token.json()["message"]
    assert api.finalize(value, in_order).status_code == 200
    assert linkedin.videos[value["video"]]["status"] == "PROCESSING"


def test_strict_part_must_match_its_byte_range(api):
    value = api.init_video(1 * MiB)
    answer = api.put(value["uploadInstructions"][0], size=1000)
    assert answer.status_code == 400
    assert answer.json()["message"] == f"Part 0 must be exactly {MiB} bytes (bytes 0-{MiB - 1}); got 1000"


def test_strict_author_of_another_member(api, linkedin):
    other = linkedin.member("someone.else")["sub"]
    answer = api.post(author=f"urn:li:person:{other}")
    assert answer.status_code == 403
    assert answer.json() == {"status": 403, "serviceErrorCode": 100, "code": "ACCESS_DENIED", "message":
                             f"Not enough permissions to access: partnerApiPostsExternal.CREATE.{API_VERSION}01"}


def test_strict_video_not_available(api):
    value = api.init_video(1 * MiB)
    answer = api.post(content={"media": {"id": value["video"], "title": "t"}})
    assert answer.status_code == 422
    assert answer.json()["message"] == f"/content/media/id :: {value['video']} is not AVAILABLE (status WAITING_UPLOAD)"


def test_strict_content_types(api, sandbox_url):
    form = api.call("POST", "/rest/posts", data={"author": api.author})
    assert form.status_code == 415 and form.json()["code"] == "UNSUPPORTED_MEDIA_TYPE"
    token = httpx.post(f"{sandbox_url}/www.linkedin.com/oauth/v2/accessToken", timeout=10, json={
        "grant_type": "authorization_code", "code": "x", "client_id": CREDENTIALS["LINKEDIN_CLIENT_ID"],
        "client_secret": CREDENTIALS["LINKEDIN_CLIENT_SECRET"], "redirect_uri": "https://bridge.example/cb"})
    assert token.status_code == 400
    assert token.json() == {"error": "invalid_request",
                            "error_description": "Content-Type must be application/x-www-form-urlencoded"}


def test_strict_unknown_field_and_wrong_distribution(api):
    unknown = api.post(specificContent={})
    assert unknown.status_code == 422
    assert unknown.json()["errorDetails"]["inputErrors"][0]["code"] == "UNRECOGNIZED_FIELD"
    dark = api.post(distribution={"feedDistribution": "NONE"})
    assert dark.status_code == 422 and "/distribution/feedDistribution" in dark.json()["message"]


def test_strict_comment_fields_actor_and_length(api, linkedin):
    urn = api.post().headers["x-restli-id"]
    path = f"/rest/socialActions/{quote(urn, safe='')}/comments"
    body = {"actor": api.author, "object": urn, "message": {"text": "hi"}}
    missing = api.call("POST", path, json={"actor": api.author, "object": urn})
    assert missing.status_code == 422 and missing.json()["errorDetails"]["inputErrors"][0]["code"] == "MISSING_FIELD"
    other = linkedin.member("someone.else")["sub"]
    foreign = api.call("POST", path, json={**body, "actor": f"urn:li:person:{other}"})
    assert foreign.status_code == 403 and "partnerApiSocialActions.CREATE" in foreign.json()["message"]
    elsewhere = api.call("POST", path, json={**body, "object": "urn:li:share:1"})
    assert elsewhere.status_code == 422 and "/object" in elsewhere.json()["message"]
    long = api.call("POST", path, json={**body, "message": {"text": "é" * 1251}})
    assert long.status_code == 422 and "MAX_LENGTH_EXCEEDED" in long.text
    raw = api.call("POST", f"/rest/socialActions/{urn}/comments", json=body)
    assert raw.status_code == 400 and "URL-encoded" in raw.json()["message"]
    made = api.call("POST", path, json=body)
    assert made.status_code == 201 and made.headers["x-restli-id"] == made.json()["commentUrn"]
    listed = api.call("GET", path)
    assert listed.status_code == 403  # reading comments needs r_member_social
    assert linkedin.engagement[urn]["comments"] == 1


def test_strict_urn_in_path_must_be_encoded(api):
    value = api.init_video(1 * MiB)
    assert api.call("GET", f"/rest/videos/{quote(value['video'], safe='')}").status_code == 200
    raw = api.call("GET", f"/rest/videos/{value['video']}")
    assert raw.status_code == 400 and "URL-encoded" in raw.json()["message"]


def test_strict_oauth_refuses_unapproved_scope_and_wrong_redirect(linkedin, sandbox_url, client):
    base = f"{sandbox_url}/www.linkedin.com/oauth/v2/authorization"
    common = {"response_type": "code", "client_id": CREDENTIALS["LINKEDIN_CLIENT_ID"], "state": "s"}
    scoped = httpx.get(base, params={**common, "redirect_uri": client.redirect_uri,
                                     "scope": "openid r_member_social"}, timeout=10)
    assert scoped.status_code == 302
    assert parse_qs(urlsplit(scoped.headers["Location"]).query)["error"] == ["unauthorized_scope_error"]
    comma = httpx.get(base, params={**common, "redirect_uri": client.redirect_uri, "scope": "openid,profile"},
                      timeout=10)
    assert "unauthorized_scope_error" in comma.headers["Location"]

    params = oauth_driver.consent(client.authorization_url(state="s"))
    answer = httpx.post(f"{sandbox_url}/www.linkedin.com/oauth/v2/accessToken", timeout=10, data={
        "grant_type": "authorization_code", "code": params["code"], "client_id": CREDENTIALS["LINKEDIN_CLIENT_ID"],
        "client_secret": CREDENTIALS["LINKEDIN_CLIENT_SECRET"], "redirect_uri": "https://elsewhere.example/cb"})
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_redirect_uri"
    wrong_secret = httpx.post(f"{sandbox_url}/www.linkedin.com/oauth/v2/accessToken", timeout=10, data={
        "grant_type": "refresh_token", "refresh_token": "x", "client_id": CREDENTIALS["LINKEDIN_CLIENT_ID"],
        "client_secret": "nope"})
    assert wrong_secret.status_code == 401 and wrong_secret.json()["error"] == "invalid_client"


def test_strict_unregistered_app_and_first_secret_binding(linkedin, sandbox_url):
    token_url = f"{sandbox_url}/www.linkedin.com/oauth/v2/accessToken"
    form = {"grant_type": "refresh_token", "refresh_token": "x", "client_id": "other-app", "client_secret": "s1"}
    unknown = httpx.post(token_url, data=form, timeout=10)
    assert unknown.status_code == 401 and unknown.json() == {"error": "invalid_client",
                                                             "error_description": "Client authentication failed"}
    linkedin.configure(auto_register=True)
    assert httpx.post(token_url, data=form, timeout=10).json()["error"] == "invalid_grant"  # secret bound now
    assert httpx.post(token_url, data={**form, "client_secret": "s2"}, timeout=10).json()["error"] == "invalid_client"


def test_strict_expired_and_wrong_host(api, sandbox):
    value = api.init_video(1 * MiB)
    assert api.call("GET", "/rest/posts", host="www.linkedin.com",
                    params={"q": "author", "author": api.author}).status_code == 404
    sandbox.clock.advance(3601)
    expired = api.put(value["uploadInstructions"][0])
    assert expired.status_code == 403 and expired.json()["message"] == "The upload URL has expired"
    sandbox.clock.advance(5_184_000)
    token = api.call("GET", "/rest/posts", params={"q": "author", "author": api.author})
    assert token.status_code == 401
    assert token.json() == {"status": 401, "serviceErrorCode": 65602, "code": "EXPIRED_ACCESS_TOKEN",
                            "message": "The token used in the request has expired"}


# ------------------------------------------------------------------------------------ memory
def test_300mb_video_streams_in_small_memory(linkedin, platform_env, control_url):
    size = 300_000_000
    linkedin.configure(processing_seconds=3600)
    token = linkedin.issue_token("creator1")
    sub = linkedin.member("creator1")["sub"]
    started = time.monotonic()
    report = publish_in_child(
        "linkedin", platform_env,
        account={"id": 1, "account_id": sub, "access_token": token, "metadata": {"author_urn": f"urn:li:person:{sub}"}},
        content={"caption": "Three hundred megabytes", "media_type": "video", "video_url": media_url(size, 60.0)},
        control_url=control_url)
    elapsed = time.monotonic() - started
    print(f"\nLinkedIn 300 MB upload: RSS growth {report['growth_mib']:.1f} MiB "
          f"(peak {report['rss_peak_kb'] // 1024} MiB), {report['steps']} steps, {elapsed:.1f} s")
    assert report["done"] and report["bytes_reported"] == size
    [video] = linkedin.videos.values()
    assert video["received"] == size and video["status"] == "AVAILABLE"
    assert linkedin.published[0]["id"] == report["platform_post_id"]
    assert report["growth_mib"] < 64
