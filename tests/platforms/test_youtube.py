"""YouTube contract tests: the client against the stand-alone emulator over loopback HTTP."""
from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from bridge.platforms.base import AccountRef, CommentTarget, Metrics, PostContent, PublishJob, StepResult, TokenSet
from bridge.platforms.errors import (
    RateLimited,
    Reauthorize,
    Rejected,
    TokenExpired,
    Transient,
    UnknownOutcome,
)
from bridge.platforms.youtube import UNIT, YouTubeClient, seconds_until_quota_reset
from tests.platforms import oauth_driver
from tests.platforms.conftest import CREDENTIALS, media_url
from tests.platforms.memory import publish_in_child

UPLOAD = "/upload/youtube/v3/videos"
SCOPES = ("https://www.googleapis.com/auth/youtube.upload", "https://www.googleapis.com/auth/youtube.readonly",
          "https://www.googleapis.com/auth/youtube.force-ssl")
REDIRECT = "https://bridge.example/wp-json/aurareels/v1/social/callback/youtube"


# ------------------------------------------------------------------------------ fixtures
@pytest.fixture(autouse=True)
def _fresh_sandbox(sandbox):
    """Every test starts from a reset sandbox, raw-HTTP ones included."""
    return sandbox


@pytest.fixture
def emu(sandbox):
    return sandbox.emulator("youtube")


@pytest.fixture
def client(platform_settings):
    yt = YouTubeClient(platform_settings)
    yt.chunk_size = UNIT  # small chunks so a 1 MB video takes several steps
    yield yt
    yt.http.close()


def connect(client: YouTubeClient, user: str = "creator1"):
    answer = oauth_driver.consent(client.authorization_url("state-1"), user=user)
    tokens = client.exchange_code(answer["code"])
    return tokens, client.fetch_accounts(tokens)


@pytest.fixture
def account(client, sandbox) -> AccountRef:
    tokens, [profile] = connect(client)
    return AccountRef(id=1, account_id=profile.account_id, access_token=tokens.access_token,
                      refresh_token=tokens.refresh_token)


def make_job(client: YouTubeClient, account: AccountRef, size: int = 1_000_000, **content) -> PublishJob:
    content.setdefault("caption", "Sunset run by the sea\nSecond line of the story")
    content.setdefault("privacy_level", "PUBLIC")
    post = PostContent(video_url=media_url(size, 20), **content)
    sent: list[tuple[int, int]] = []
    return PublishJob(post_id=1, account=account, content=post, caption=client.compose_caption(post),
                      progress=lambda done, total: sent.append((done, total)))


def step(client: YouTubeClient, job: PublishJob, cls=None) -> StepResult:
    result = (cls or client).publish_step(job)
    job.checkpoint = result.checkpoint
    return result


def run(client: YouTubeClient, job: PublishJob, sandbox, limit: int = 60) -> StepResult:
    """Drive the job to completion, advancing the sandbox clock through processing waits."""
    for _ in range(limit):
        result = step(client, job)
        if result.done:
            return result
        if result.wait is not None:
            sandbox.clock.advance(result.wait)
    raise AssertionError(f"not done after {limit} steps: {job.checkpoint}")


def api(sandbox_url: str, host: str = "www.googleapis.com") -> str:
    return f"{sandbox_url}/{host}"


# ------------------------------------------------------------------------------ OAuth
def test_authorize_url_asks_for_offline_access_with_consent(client):
    url = client.authorization_url("s-42")
    query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    assert urlsplit(url).path.endswith("/accounts.google.com/o/oauth2/v2/auth")
    assert query["access_type"] == "offline" and query["prompt"] == "consent"
    assert query["include_granted_scopes"] == "true"
    assert query["scope"] == " ".join(SCOPES)
    assert query["client_id"] == CREDENTIALS["YOUTUBE_CLIENT_ID"] and query["state"] == "s-42"
    assert query["redirect_uri"] == REDIRECT and query["response_type"] == "code"


def test_connect_reads_the_channel(client, sandbox):
    tokens, profiles = connect(client)
    assert tokens.access_token.startswith("ya29.") and tokens.refresh_token.startswith("1//")
    assert tokens.expires_at is not None
    [profile] = profiles
    assert profile.account_id.startswith("UC") and len(profile.account_id) == 24
    assert profile.account_name == "Creator1" and profile.username == "@creator1"
    assert profile.picture_url and profile.metadata["custom_url"] == "@creator1"


def test_consent_denied_redirects_with_access_denied(client):
    answer = oauth_driver.consent(client.authorization_url("s-1"), decision="deny")
    assert answer["error"] == "access_denied" and answer["state"] == "s-1" and "code" not in answer


def test_code_is_single_use(client):
    answer = oauth_driver.consent(client.authorization_url("s"))
    client.exchange_code(answer["code"])
    with pytest.raises(Reauthorize) as caught:
        client.exchange_code(answer["code"])
    assert caught.value.code == "oauth_invalid_grant"


def test_refresh_keeps_the_stored_refresh_token(client, account, sandbox_url):
    tokens = client.refresh(account.refresh_token)
    assert tokens.access_token != account.access_token
    assert tokens.refresh_token == account.refresh_token  # Google does not rotate; the answer omits it
    # the refresh token stays usable, and the refresh answer carries no refresh_token
    raw = httpx.post(f"{sandbox_url}/oauth2.googleapis.com/token", data={
        "grant_type": "refresh_token", "refresh_token": account.refresh_token,
        "client_id": CREDENTIALS["YOUTUBE_CLIENT_ID"], "client_secret": CREDENTIALS["YOUTUBE_CLIENT_SECRET"]})
    assert raw.status_code == 200 and "refresh_token" not in raw.json() and raw.json()["expires_in"] == 3599
    [profile] = client.fetch_accounts(tokens)  # the new access token works
    assert profile.account_id == account.account_id


def test_revoke_ends_the_grant(client, account):
    assert client.revoke(account) is True
    with pytest.raises(Reauthorize):
        client.refresh(account.refresh_token)
    with pytest.raises(TokenExpired):  # revoking the refresh token killed its access tokens too
        client.fetch_accounts(TokenSet(access_token=account.access_token))
    assert client.revoke(account) is False  # already forgotten: no error


def test_google_account_without_channel_is_refused(client, emu):
    emu.configure(users_without_channel=["nochannel"])
    with pytest.raises(Rejected) as caught:
        connect(client, user="nochannel")
    assert caught.value.code == "youtube_channel_required"


# ------------------------------------------------------------------------------ publishing
def test_publish_step_by_step(client, account, emu, sandbox):
    job = make_job(client, account, size=1_000_000, hashtags=["travel", "sea"],
                   extra={"category_id": "19", "made_for_kids": False})
    first = step(client, job)
    assert first.checkpoint["stage"] == "upload" and first.checkpoint["offset"] == 0
    assert first.checkpoint["session_uri"].startswith("https://www.googleapis.com/upload/youtube/v3/videos?")
    assert "upload_id=" in first.checkpoint["session_uri"]
    offsets = []
    while job.checkpoint["stage"] == "upload":
        offsets.append(step(client, job).checkpoint.get("offset"))
    assert offsets[:3] == [UNIT, 2 * UNIT, 3 * UNIT] and len(offsets) == 4  # 3 full chunks and the rest
    assert job.checkpoint["stage"] == "processing"
    video_id = job.checkpoint["video_id"]
    waiting = step(client, job)
    assert not waiting.done and 5 <= waiting.wait <= 60
    sandbox.clock.advance(emu.config["processing_seconds"])
    done = step(client, job)
    assert done.done and done.platform_post_id == video_id
    assert done.platform_post_url == f"https://www.youtube.com/watch?v={video_id}"
    [published] = emu.published
    assert published["id"] == video_id and published["account"] == account.account_id
    assert published["title"] == "Sunset run by the sea" and published["privacy"] == "public"
    assert published["caption"].endswith("#travel #sea")
    video = emu.videos[video_id]
    assert video.snippet["tags"] == ["travel", "sea"] and video.snippet["categoryId"] == "19"
    assert video.status["selfDeclaredMadeForKids"] is False
    assert emu.sessions[first.checkpoint["session_uri"].rsplit("=", 1)[1]].received == 1_000_000
    assert step(client, job).done  # re-running a finished job is harmless


def test_progress_is_reported(client, account, sandbox):
    sent: list[tuple[int, int]] = []
    job = make_job(client, account, size=600_000)
    job.progress = lambda done, total: sent.append((done, total))
    run(client, job, sandbox)
    assert sent == [(UNIT, 600_000), (2 * UNIT, 600_000), (600_000, 600_000)]


@pytest.mark.parametrize("level,privacy", [("PUBLIC", "public"), ("FRIENDS", "unlisted"), ("PRIVATE", "private")])
def test_privacy_levels_map_to_youtube(client, account, emu, sandbox, level, privacy):
    result = run(client, make_job(client, account, size=300_000, privacy_level=level), sandbox)
    assert emu.videos[result.platform_post_id].status["privacyStatus"] == privacy
    assert "notice" not in result.checkpoint


def test_scheduled_publication_goes_public_at_publish_at(client, account, emu, sandbox, sandbox_url):
    when = datetime.now(timezone.utc) + timedelta(days=1)
    job = make_job(client, account, size=300_000, extra={"publish_at": when.isoformat()})
    result = run(client, job, sandbox)
    video = emu.videos[result.platform_post_id]
    assert video.status["privacyStatus"] == "private"
    assert video.status["publishAt"] == when.strftime("%Y-%m-%dT%H:%M:%SZ")
    sandbox.clock.advance(86_400 + 60)
    listed = httpx.get(f"{api(sandbox_url)}/youtube/v3/videos",
                       params={"part": "status", "id": video.id},
                       headers={"Authorization": f"Bearer {client.refresh(account.refresh_token).access_token}"})
    assert listed.json()["items"][0]["status"]["privacyStatus"] == "public"


def test_unverified_project_locks_uploads_to_private(client, account, emu, sandbox):
    emu.configure(unverified_project=True)
    result = run(client, make_job(client, account, size=300_000), sandbox)
    assert result.checkpoint["privacy"] == "private" and result.checkpoint["notice"] == "forced_private"


def test_processing_waits_follow_the_clock(client, account, emu, sandbox):
    emu.configure(processing_seconds=120)
    job = make_job(client, account, size=300_000)
    while job.checkpoint.get("stage") != "processing":
        step(client, job)
    waits = []
    for _ in range(10):
        result = step(client, job)
        if result.done:
            break
        waits.append(result.wait)
        sandbox.clock.advance(result.wait)
    assert result.done and waits[0] == 60 and 119 < sum(waits) <= 121  # the wait follows timeLeftMs


@pytest.mark.parametrize("outcome,reason,code", [("failed", "codec", "video_failed_codec"),
                                                 ("rejected", "duplicate", "video_rejected_duplicate")])
def test_processing_failures_are_rejected(client, account, sandbox, control_url, outcome, reason, code):
    job = make_job(client, account, size=300_000)
    while job.checkpoint.get("stage") != "processing":
        step(client, job)
    answer = httpx.post(f"{control_url}/process", json={"platform": "youtube", "outcome": outcome, "reason": reason})
    assert answer.json()["processed"] == 1
    with pytest.raises(Rejected) as caught:
        step(client, job)
    assert caught.value.code == code and caught.value.platform_code == reason


def test_resume_in_a_new_process_asks_the_session(client, account, emu, sandbox, platform_settings):
    job = make_job(client, account, size=1_000_000)
    for _ in range(3):
        step(client, job)
    assert job.checkpoint["offset"] == 2 * UNIT
    other = YouTubeClient(platform_settings)  # another worker: knows only the persisted checkpoint
    before = len(sandbox.requests("youtube"))
    step(client, job, cls=other)
    puts = [r for r in sandbox.requests("youtube")[before:] if r["method"] == "PUT"]
    assert len(puts) == 2 and all(r["status"] == 308 for r in puts)  # status query, then the chunk
    assert job.checkpoint["offset"] == 3 * UNIT
    other.chunk_size = UNIT
    assert run(other, job, sandbox).done


# ------------------------------------------------------------------------------ faults
def test_failed_chunk_resumes_from_the_session_offset(client, account, emu, sandbox):
    job = make_job(client, account, size=1_000_000)
    step(client, job)
    sandbox.inject("youtube", kind="status", status=503, method="PUT", path=UPLOAD)
    with pytest.raises(Transient):
        step(client, job)
    assert job.checkpoint["offset"] == 0
    result = run(client, job, sandbox)
    assert result.done and len(emu.published) == 1
    assert not [r for r in sandbox.requests("youtube") if r["status"] == 400]


def test_lost_chunk_answer_resumes_after_the_persisted_bytes(client, account, emu, sandbox):
    job = make_job(client, account, size=1_000_000)
    step(client, job)
    step(client, job)  # first chunk confirmed
    sandbox.inject("youtube", kind="lost", method="PUT", path=UPLOAD)  # the second chunk lands, its answer is lost
    with pytest.raises(Transient):
        step(client, job)
    assert job.checkpoint["offset"] == UNIT
    step(client, job)  # asks the session (2 units held) and sends the third chunk
    assert job.checkpoint["offset"] == 3 * UNIT
    assert run(client, job, sandbox).done and len(emu.published) == 1


def test_chunk_cut_mid_way_resumes_from_what_persisted(client, account, emu, sandbox):
    client.chunk_size = 4 * UNIT
    job = make_job(client, account, size=2_000_000)
    step(client, job)
    sandbox.inject("youtube", kind="error", error="partialChunk", method="PUT", path=UPLOAD)
    with pytest.raises(Transient):
        step(client, job)
    step(client, job)
    assert job.checkpoint["offset"] == 2 * UNIT + 4 * UNIT  # 2 units persisted, then a full chunk
    result = run(client, job, sandbox)
    session = next(iter(emu.sessions.values()))
    assert result.done and session.received == 2_000_000


def test_lost_final_chunk_is_reconciled_from_the_session(client, account, emu, sandbox):
    job = make_job(client, account, size=600_000)
    step(client, job)
    step(client, job)
    step(client, job)
    assert job.checkpoint["total"] - job.checkpoint["offset"] < UNIT  # the next chunk is the last
    before = dict(job.checkpoint)
    sandbox.inject("youtube", kind="lost", method="PUT", path=UPLOAD)
    with pytest.raises(UnknownOutcome):
        step(client, job)
    job.checkpoint = before
    settled = client.reconcile(job)
    assert settled.checkpoint["stage"] == "processing" and settled.checkpoint["video_id"] in emu.videos
    job.checkpoint = settled.checkpoint
    assert run(client, job, sandbox).done and len(emu.published) == 1


def test_final_chunk_timeout_is_an_unknown_outcome(client, account, emu, sandbox):
    job = make_job(client, account, size=300_000)
    step(client, job)
    step(client, job)
    sandbox.inject("youtube", kind="lost", timeout=True, delay=1.5, method="PUT", path=UPLOAD)
    before = dict(job.checkpoint)
    with pytest.raises(UnknownOutcome) as caught:
        step(client, job)
    assert caught.value.code == "timeout"
    job.checkpoint = before
    job.checkpoint = client.reconcile(job).checkpoint
    assert job.checkpoint["stage"] == "processing" and len(emu.published) == 1


@pytest.mark.parametrize("kind", ["status", "lost"])
def test_session_start_failure_is_reconciled_and_redone(client, account, emu, sandbox, kind):
    job = make_job(client, account, size=300_000)
    sandbox.inject("youtube", kind=kind, method="POST", path=UPLOAD)
    with pytest.raises(UnknownOutcome):
        step(client, job)
    settled = client.reconcile(job)  # an orphaned session can never publish: redo is safe
    assert settled.checkpoint == {}
    assert run(client, job, sandbox).done
    assert len(emu.published) == 1 and len(emu.sessions) == (2 if kind == "lost" else 1)


@pytest.mark.parametrize("gone", [404, 410])
def test_expired_session_starts_again(client, account, emu, sandbox, gone):
    emu.configure(session_ttl=600, expired_session_status=gone)
    job = make_job(client, account, size=1_000_000)
    step(client, job)
    step(client, job)
    sandbox.clock.advance(601)
    restarted = step(client, job)
    assert restarted.checkpoint == {"stage": "init", "restarts": 1}
    assert run(client, job, sandbox).done and len(emu.published) == 1


def test_reconcile_cannot_settle_a_final_chunk_whose_session_is_gone(client, account, emu, sandbox):
    emu.configure(session_ttl=600)
    job = make_job(client, account, size=300_000)
    step(client, job)
    step(client, job)
    sandbox.clock.advance(601)
    with pytest.raises(UnknownOutcome) as caught:
        client.reconcile(job)
    assert caught.value.code == "unconfirmed"


def test_expired_access_token(client, account, emu, sandbox):
    sandbox.clock.advance(3600)
    job = make_job(client, account, size=300_000)
    with pytest.raises(TokenExpired):
        step(client, job)
    job.account.access_token = client.refresh(account.refresh_token).access_token
    assert run(client, job, sandbox).done


def test_quota_exceeded_waits_until_pacific_midnight(client, account, emu):
    emu.configure(insert_calls_per_day=0)
    with pytest.raises(RateLimited) as caught:
        step(client, make_job(client, account))
    assert caught.value.code == "quota_exceeded" and caught.value.platform_code == "quotaExceeded"
    assert abs(caught.value.retry_after - seconds_until_quota_reset()) < 5


def test_quota_resets_at_pacific_midnight(client, account, emu, sandbox):
    emu.configure(insert_calls_per_day=1)  # the project's upload bucket holds one upload
    run(client, make_job(client, account, size=300_000), sandbox)
    with pytest.raises(RateLimited):
        step(client, make_job(client, account, size=300_000))
    sandbox.clock.advance(seconds_until_quota_reset(datetime.fromtimestamp(sandbox.clock.now(), timezone.utc)) + 1)
    job = make_job(client, account, size=300_000)
    job.account.access_token = client.refresh(account.refresh_token).access_token
    assert run(client, job, sandbox).done


def test_uploads_have_their_own_project_bucket_by_default(client, account, emu, sandbox):
    assert emu.config["quota_model"] == "buckets" and emu.config["insert_calls_per_day"] == 100
    emu.configure(insert_calls_per_day=1, quota_units_per_day=50)  # reads have their own units
    run(client, make_job(client, account, size=300_000), sandbox)
    with pytest.raises(RateLimited) as caught:
        step(client, make_job(client, account, size=300_000))
    assert caught.value.code == "quota_exceeded"
    assert emu.snapshot()["quota"]["insert_calls"] == 1 and emu.snapshot()["quota"]["units"] < 50


def test_units_model_charges_about_100_units_an_upload(client, account, emu, sandbox):
    emu.configure(quota_model="units", quota_units_per_day=250)
    assert emu.config["insert_cost"] == 100
    run(client, make_job(client, account, size=300_000), sandbox)
    run(client, make_job(client, account, size=300_000, caption="second"), sandbox)
    with pytest.raises(RateLimited) as caught:  # a third upload would pass 250 units
        step(client, make_job(client, account, size=300_000, caption="third"))
    assert caught.value.code == "quota_exceeded"


def test_channel_upload_limit_waits_and_clears_over_time(client, account, emu, sandbox):
    emu.configure(channel_uploads_per_day=1)
    run(client, make_job(client, account, size=300_000), sandbox)
    job = make_job(client, account, size=300_000, caption="next one")
    with pytest.raises(RateLimited) as caught:  # not a final failure: the channel's cap clears
        step(client, job)
    assert caught.value.code == "upload_limit_exceeded" and caught.value.retry_after == 3600
    sandbox.clock.advance(86_400)
    job.account.access_token = client.refresh(account.refresh_token).access_token
    assert run(client, job, sandbox).done


def test_rate_limit_with_retry_after(client, account, sandbox):
    sandbox.inject("youtube", kind="rate_limit", retry_after=42, method="POST", path=UPLOAD)
    with pytest.raises(RateLimited) as caught:
        step(client, make_job(client, account))
    assert caught.value.retry_after == 42 and caught.value.code == "rate_limited"


def test_per_user_request_rate(client, account, emu):
    emu.configure(requests_per_minute=2)
    with pytest.raises(RateLimited) as caught:
        for _ in range(3):
            client._get("channels", account.access_token, part="id", mine="true")
    assert caught.value.platform_code == "userRateLimitExceeded" and caught.value.retry_after == 60


@pytest.mark.parametrize("reason,cls,code", [
    ("authError", TokenExpired, "token_expired"),
    ("forbidden", Rejected, "forbidden"),
    ("invalidCategoryId", Rejected, "invalid_category"),
    ("insufficientPermissions", Reauthorize, "insufficient_permissions"),
    ("userRateLimitExceeded", RateLimited, "rate_limited"),
    ("uploadLimitExceeded", RateLimited, "upload_limit_exceeded"),
    ("youtubeSignupRequired", Rejected, "youtube_channel_required"),
    ("invalidFilename", Rejected, "invalid_filename"),
])
def test_named_errors_map_into_the_taxonomy(client, account, sandbox, reason, cls, code):
    sandbox.inject("youtube", kind="error", error=reason, method="POST", path=UPLOAD)
    with pytest.raises(cls) as caught:
        step(client, make_job(client, account))
    assert caught.value.code == code and caught.value.platform_code == reason
    assert account.access_token not in caught.value.message


def test_invalid_title_from_the_platform(client, account):
    job = make_job(client, account, title="<b>Bold</b> move")
    assert any(i.code == "invalid_characters" for i in client.validate(job.content))
    with pytest.raises(Rejected) as caught:
        step(client, job)
    assert caught.value.code == "invalid_title"


def test_server_error_on_a_read_is_transient(client, account, sandbox):
    job = make_job(client, account, size=300_000)
    while job.checkpoint.get("stage") != "processing":
        step(client, job)
    sandbox.inject("youtube", kind="status", status=500, method="GET", path="/youtube/v3/videos")
    with pytest.raises(Transient):
        step(client, job)
    assert run(client, job, sandbox).done


# ------------------------------------------------------------------------------ metrics, quota, time
def test_metrics(client, account, emu, sandbox):
    result = run(client, make_job(client, account, size=300_000), sandbox)
    emu.set_statistics(result.platform_post_id, viewCount=120, likeCount=7, commentCount=3)
    assert client.fetch_metrics(account, result.platform_post_id) == Metrics(views=120, likes=7, comments=3, shares=0)
    with pytest.raises(Rejected) as caught:
        client.fetch_metrics(account, "missingvid1")
    assert caught.value.code == "video_not_found"


def test_a_public_video_gathers_views_with_the_sandbox_clock_a_private_one_none(client, account, emu, sandbox):
    public = run(client, make_job(client, account, size=300_000), sandbox)
    private = run(client, make_job(client, account, size=300_000, caption="Private cut", privacy_level="PRIVATE"),
                  sandbox)
    first = client.fetch_metrics(account, public.platform_post_id)
    assert (first.saves, first.reach) == (None, None)  # the Data API reports neither
    sandbox.clock.advance(86400)
    account.access_token = client.refresh(account.refresh_token).access_token
    later = client.fetch_metrics(account, public.platform_post_id)
    assert later.views > first.views and later.likes >= first.likes
    assert client.fetch_metrics(account, private.platform_post_id).views == 0


# ------------------------------------------------------------------------------ first comment
def test_first_comment_is_a_top_level_comment_of_the_channel(client, account, emu, sandbox):
    result = run(client, make_job(client, account, size=300_000), sandbox)
    target = CommentTarget(result.platform_post_id, result.platform_post_url)
    thread = client.post_comment(account, target, "Chapters: 0:00 intro, 1:20 the run")
    [made] = emu.snapshot()["comments"]
    assert made == {"id": thread, "object": result.platform_post_id, "author": account.account_id,
                    "message": "Chapters: 0:00 intro, 1:20 the run"}
    assert client.find_comment(account, target, "Chapters: 0:00 intro, 1:20 the run", None) == thread
    assert client.find_comment(account, target, "another", None) is None
    assert client.fetch_metrics(account, result.platform_post_id).comments == 1


def test_first_comment_needs_the_force_ssl_scope(client, account, emu, sandbox):
    result = run(client, make_job(client, account, size=300_000), sandbox)
    narrow = emu.oauth.issue(CREDENTIALS["YOUTUBE_CLIENT_ID"], "creator1", list(SCOPES[:2]))["access_token"]
    without = AccountRef(id=1, account_id=account.account_id, access_token=narrow)
    with pytest.raises(Reauthorize) as refused:
        client.post_comment(without, CommentTarget(result.platform_post_id), "First!")
    assert refused.value.platform_code == "insufficientPermissions"
    assert emu.snapshot()["comments"] == []


def test_made_for_kids_video_takes_no_comment(client, account, emu, sandbox):
    result = run(client, make_job(client, account, size=300_000, extra={"made_for_kids": True}), sandbox)
    with pytest.raises(Rejected) as refused:
        client.post_comment(account, CommentTarget(result.platform_post_id), "First!")
    assert refused.value.code == "comments_disabled"


def test_lost_comment_answer_is_unknown_then_found(client, account, emu, sandbox):
    result = run(client, make_job(client, account, size=300_000), sandbox)
    target = CommentTarget(result.platform_post_id)
    sandbox.inject("youtube", kind="lost", path="commentThreads", method="POST")
    with pytest.raises(UnknownOutcome):
        client.post_comment(account, target, "First!")
    [made] = emu.snapshot()["comments"]
    assert client.find_comment(account, target, "First!", None) == made["id"]


def test_quota_is_counted_by_the_bridge(client, account):
    # YouTube reports none: the bridge counts its uploads per channel and for the project
    assert client.quota(account) is None
    assert client.daily_limit == 50 and client.project_limit.limit == 100
    assert client.project_limit.zone == "America/Los_Angeles"


@pytest.mark.parametrize("now,seconds", [
    (datetime(2026, 1, 15, 8, 0, tzinfo=timezone.utc), 86_400),  # midnight PST
    (datetime(2026, 1, 15, 20, 0, tzinfo=timezone.utc), 12 * 3600),  # noon PST
    (datetime(2026, 3, 8, 8, 30, tzinfo=timezone.utc), 22.5 * 3600),  # spring forward: a 23-hour day
    (datetime(2026, 11, 1, 7, 30, tzinfo=timezone.utc), 24.5 * 3600),  # fall back: a 25-hour day
])
def test_seconds_until_quota_reset(now, seconds):
    assert seconds_until_quota_reset(now) == seconds


# ------------------------------------------------------------------------------ content rules
def test_title_comes_from_the_first_line(client):
    assert client.compose_title(PostContent(caption="\n  First <line> here \nmore")) == "First line here"
    assert client.compose_title(PostContent(caption="x", title=" Own title ")) == "Own title"
    long = client.compose_title(PostContent(caption="word " * 40))
    assert len(long) <= 100 and long.endswith("…") and not long.endswith(" …")


def test_description_carries_the_hashtags_and_tags_fit(client):
    content = PostContent(caption="Hello", hashtags=["#one", "two words", "one"],
                          extra={"tags": ["x" * 200, "y" * 200, "z" * 200]})
    assert client.compose_caption(content) == "Hello\n\n#one #twowords"
    tags = client.tags(content)
    assert tags == ["one", "two words", "x" * 200, "y" * 200]  # the third long tag would pass 500
    resource = client.video_resource(PostContent(caption="Hi", privacy_level="FRIENDS",
                                                 extra={"made_for_kids": True}), "Hi")
    assert resource["status"] == {"privacyStatus": "unlisted", "selfDeclaredMadeForKids": True}
    assert resource["snippet"] == {"title": "Hi", "description": "Hi", "categoryId": "22"}
    late = client.video_resource(PostContent(caption="Hi", extra={"publish_at": "2020-01-01T00:00:00Z"}), "Hi")
    assert late["status"]["privacyStatus"] == "public" and "publishAt" not in late["status"]
    with pytest.raises(Rejected) as caught:
        client.video_resource(PostContent(caption="Hi", extra={"publish_at": "soon"}), "Hi")
    assert caught.value.code == "invalid_publish_at"


def codes(issues) -> set[str]:
    return {i.code for i in issues}


def test_validate_youtube_rules(client):
    assert codes(client.validate(PostContent(caption="Fine", privacy_level="PUBLIC"))) == set()
    assert "title_required" in codes(client.validate(PostContent(caption="")))
    assert "title_too_long" in codes(client.validate(PostContent(caption="x", title="t" * 101)))
    assert "invalid_characters" in codes(client.validate(PostContent(caption="ok\n1 < 2")))
    # 2,600 characters but 5,200 bytes: YouTube counts bytes
    assert "caption_too_long" in codes(client.validate(PostContent(caption="é" * 2600)))
    many = [f"h{i}" for i in range(61)]
    assert "too_many_hashtags" in codes(client.validate(PostContent(caption="x", hashtags=many)))
    future = (datetime.now(timezone.utc) + timedelta(hours=2)).isoformat()
    past = (datetime.now(timezone.utc) - timedelta(hours=2)).isoformat()
    scheduled = PostContent(caption="x", privacy_level="PUBLIC", extra={"publish_at": future})
    assert codes(client.validate(scheduled)) == set()
    assert "publish_at_needs_public" in codes(client.validate(
        PostContent(caption="x", privacy_level="PRIVATE", extra={"publish_at": future})))
    assert "publish_at_in_past" in codes(client.validate(PostContent(caption="x", extra={"publish_at": past})))
    assert "invalid_publish_at" in codes(client.validate(PostContent(caption="x", extra={"publish_at": "soon"})))


# ------------------------------------------------------------------------------ strictness (raw HTTP)
@pytest.fixture
def token(account) -> str:
    return account.access_token


def start(sandbox_url: str, token: str, total: int = 3 * UNIT + 100, body=None, headers=None,
          part: str = "snippet,status") -> httpx.Response:
    sent = {"Authorization": f"Bearer {token}", "X-Upload-Content-Length": str(total),
            "X-Upload-Content-Type": "video/mp4", **(headers or {})}
    sent = {k: v for k, v in sent.items() if v is not None}
    body = body if body is not None else {"snippet": {"title": "T"}, "status": {"privacyStatus": "private"}}
    return httpx.post(f"{api(sandbox_url)}{UPLOAD}", params={"uploadType": "resumable", "part": part}, headers=sent,
                      json=body)


def session_url(sandbox_url: str, response: httpx.Response) -> str:
    assert response.status_code == 200, response.text
    location = urlsplit(response.headers["Location"])
    assert location.netloc == "www.googleapis.com"
    return f"{api(sandbox_url)}{location.path}?{location.query}"


def put(url: str, first: int, size: int, total: int, content_range: str | None = None) -> httpx.Response:
    content_range = content_range or f"bytes {first}-{first + size - 1}/{total}"
    return httpx.put(url, content=b"\0" * size, headers={"Content-Range": content_range, "Content-Type": "video/mp4"})


def reason(response: httpx.Response) -> str:
    return response.json()["error"]["errors"][0]["reason"]


def test_strict_chunk_must_be_a_multiple_of_256k(sandbox_url, token):
    url = session_url(sandbox_url, start(sandbox_url, token))
    answer = put(url, 0, 100_000, 3 * UNIT + 100)
    assert answer.status_code == 400 and reason(answer) == "badRequest"
    assert "multiple of 262144" in answer.json()["error"]["message"]


def test_strict_content_range_must_start_at_the_received_offset(sandbox_url, token):
    total = 3 * UNIT + 100
    url = session_url(sandbox_url, start(sandbox_url, token, total))
    assert put(url, 0, UNIT, total).status_code == 308
    answer = put(url, 2 * UNIT, UNIT, total)
    assert answer.status_code == 400 and "does not match the 262144 byte(s) already received" in answer.text


def test_strict_status_query_reports_the_persisted_range(sandbox_url, token):
    total = 3 * UNIT + 100
    url = session_url(sandbox_url, start(sandbox_url, token, total))
    empty = httpx.put(url, headers={"Content-Range": f"bytes */{total}"})
    assert empty.status_code == 308 and "Range" not in empty.headers  # nothing persisted yet
    put(url, 0, 2 * UNIT, total)
    query = httpx.put(url, headers={"Content-Range": f"bytes */{total}"})
    assert query.status_code == 308 and query.headers["Range"] == f"bytes=0-{2 * UNIT - 1}"
    final = put(url, 2 * UNIT, UNIT + 100, total)
    assert final.status_code == 201 and final.json()["status"]["uploadStatus"] == "uploaded"
    done = httpx.put(url, headers={"Content-Range": f"bytes */{total}"})
    assert done.status_code == 200 and done.json()["id"] == final.json()["id"]


def test_strict_content_range_total_must_match_the_declared_length(sandbox_url, token):
    url = session_url(sandbox_url, start(sandbox_url, token, 3 * UNIT + 100))
    answer = put(url, 0, UNIT, 5 * UNIT)
    assert answer.status_code == 400 and "X-Upload-Content-Length" in answer.json()["error"]["message"]


def test_strict_unknown_and_expired_sessions(sandbox_url, token, emu, sandbox):
    unknown = httpx.put(f"{api(sandbox_url)}{UPLOAD}?uploadType=resumable&upload_id=nope",
                        headers={"Content-Range": "bytes */10"})
    assert unknown.status_code == 404 and reason(unknown) == "notFound"
    emu.configure(session_ttl=60, expired_session_status=410)
    url = session_url(sandbox_url, start(sandbox_url, token))
    sandbox.clock.advance(61)
    gone = put(url, 0, UNIT, 3 * UNIT + 100)
    assert gone.status_code == 410 and gone.json()["error"]["code"] == 410


def test_strict_metadata_needs_a_title(sandbox_url, token):
    for body in ({"snippet": {"description": "no title"}}, {"status": {"privacyStatus": "private"}},
                 {"snippet": {"title": "x" * 101}}, {"snippet": {"title": "a <b>"}}):
        answer = start(sandbox_url, token, body=body)
        assert answer.status_code == 400 and reason(answer) == "invalidTitle"
        assert answer.json()["error"]["errors"][0]["domain"] == "youtube.video"
    too_long = start(sandbox_url, token, body={"snippet": {"title": "T", "description": "é" * 2501}})
    assert too_long.status_code == 400 and reason(too_long) == "invalidDescription"


def test_strict_publish_at_requires_private(sandbox_url, token):
    when = (datetime.now(timezone.utc) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    public = start(sandbox_url, token, body={"snippet": {"title": "T"},
                                            "status": {"privacyStatus": "public", "publishAt": when}})
    assert public.status_code == 400 and reason(public) == "invalidPublishAt"
    past = start(sandbox_url, token, body={"snippet": {"title": "T"},
                                          "status": {"privacyStatus": "private", "publishAt": "2020-01-01T00:00:00Z"}})
    assert past.status_code == 400 and reason(past) == "invalidPublishAt"
    private = start(sandbox_url, token, body={"snippet": {"title": "T"},
                                             "status": {"privacyStatus": "private", "publishAt": when}})
    assert private.status_code == 200


def test_strict_quota_exceeded(sandbox_url, token, emu):
    emu.configure(insert_calls_per_day=2)
    assert start(sandbox_url, token).status_code == 200
    assert start(sandbox_url, token).status_code == 200
    answer = start(sandbox_url, token)
    assert answer.status_code == 403 and reason(answer) == "quotaExceeded"
    assert answer.json()["error"]["errors"][0]["domain"] == "youtube.quota"


def test_strict_session_start_needs_the_upload_length_and_a_video_type(sandbox_url, token):
    missing = start(sandbox_url, token, headers={"X-Upload-Content-Length": None})
    assert missing.status_code == 400 and reason(missing) == "required"
    assert missing.json()["error"]["errors"][0]["location"] == "X-Upload-Content-Length"
    image = start(sandbox_url, token, headers={"X-Upload-Content-Type": "image/png"})
    assert image.status_code == 400 and reason(image) == "badContent"
    other = httpx.post(f"{api(sandbox_url)}{UPLOAD}", params={"uploadType": "multipart", "part": "snippet"},
                       headers={"Authorization": f"Bearer {token}"}, json={"snippet": {"title": "T"}})
    assert other.status_code == 400
    no_token = start(sandbox_url, "", headers={"Authorization": None})
    assert no_token.status_code == 401 and reason(no_token) == "required"


def test_strict_comment_thread_insert(client, account, emu, sandbox, sandbox_url, token):
    video = run(client, make_job(client, account, size=300_000), sandbox).platform_post_id
    url, headers = f"{api(sandbox_url)}/youtube/v3/commentThreads", {"Authorization": f"Bearer {token}"}

    def insert(snippet, part="snippet", **kw):
        return httpx.post(url, params={"part": part} if part else {}, headers=headers,
                          json={"snippet": snippet}, **kw)

    text = {"topLevelComment": {"snippet": {"textOriginal": "hi"}}}
    assert reason(insert({"videoId": video, **text}, part=None)) == "required"
    assert reason(insert({"videoId": video, **text})) == "channelOrVideoIdMissing"
    assert reason(insert({"channelId": account.account_id, "videoId": video,
                          "topLevelComment": {"snippet": {"textOriginal": " "}}})) == "commentTextRequired"
    too_long = {"topLevelComment": {"snippet": {"textOriginal": "x" * 10_001}}}
    assert reason(insert({"channelId": account.account_id, "videoId": video, **too_long})) == "commentTextTooLong"
    assert reason(insert({"channelId": "UCsomeoneelse0000000000", "videoId": video, **text})) == "channelNotFound"
    assert reason(insert({"channelId": account.account_id, "videoId": "missingvid1", **text})) == "videoNotFound"
    form = httpx.post(url, params={"part": "snippet"}, headers=headers, data={"snippet": "x"})
    assert form.status_code == 400 and reason(form) == "parseError"
    before = emu.snapshot()["quota"]["units"]
    made = insert({"channelId": account.account_id, "videoId": video, **text})
    assert made.status_code == 200 and made.json()["kind"] == "youtube#commentThread"
    assert made.json()["snippet"]["topLevelComment"]["snippet"]["authorChannelId"] == {"value": account.account_id}
    assert emu.snapshot()["quota"]["units"] - before == 50
    listed = httpx.get(url, params={"part": "snippet", "videoId": video, "maxResults": 5}, headers=headers)
    assert [t["id"] for t in listed.json()["items"]] == [made.json()["id"]]


def test_strict_token_endpoint_takes_only_forms(sandbox_url, client):
    answer = oauth_driver.consent(client.authorization_url("s"))
    body = {"grant_type": "authorization_code", "code": answer["code"], "redirect_uri": REDIRECT,
            "client_id": CREDENTIALS["YOUTUBE_CLIENT_ID"], "client_secret": CREDENTIALS["YOUTUBE_CLIENT_SECRET"]}
    as_json = httpx.post(f"{sandbox_url}/oauth2.googleapis.com/token", json=body)
    assert as_json.status_code == 400 and as_json.json()["error"] == "invalid_request"
    wrong_redirect = httpx.post(f"{sandbox_url}/oauth2.googleapis.com/token",
                                data={**body, "redirect_uri": REDIRECT + "x"})
    assert wrong_redirect.status_code == 400 and wrong_redirect.json()["error"] == "redirect_uri_mismatch"
    wrong_secret = httpx.post(f"{sandbox_url}/oauth2.googleapis.com/token", data={**body, "client_secret": "nope"})
    assert wrong_secret.status_code == 401 and wrong_secret.json()["error"] == "invalid_client"
    assert httpx.post(f"{sandbox_url}/oauth2.googleapis.com/token", data=body).status_code == 200
    assert httpx.get(f"{sandbox_url}/oauth2.googleapis.com/token").status_code == 405
    assert httpx.post(f"{api(sandbox_url)}/token", data=body).status_code == 404  # wrong host


def test_strict_refresh_with_an_unknown_token(sandbox_url):
    answer = httpx.post(f"{sandbox_url}/oauth2.googleapis.com/token", data={
        "grant_type": "refresh_token", "refresh_token": "1//0unknown", "client_id": CREDENTIALS["YOUTUBE_CLIENT_ID"],
        "client_secret": CREDENTIALS["YOUTUBE_CLIENT_SECRET"]})
    assert answer.status_code == 400
    assert answer.json() == {"error": "invalid_grant", "error_description": "Token has been expired or revoked."}


def test_strict_replayed_code_revokes_what_it_granted(sandbox_url, client):
    code = oauth_driver.consent(client.authorization_url("s"))["code"]
    tokens = client.exchange_code(code)
    with pytest.raises(Reauthorize):
        client.exchange_code(code)
    with pytest.raises(Reauthorize):
        client.refresh(tokens.refresh_token)


def test_strict_refresh_token_needs_offline_and_consent_again(sandbox_url):
    def authorize(**extra) -> dict:
        params = {"client_id": CREDENTIALS["YOUTUBE_CLIENT_ID"], "redirect_uri": REDIRECT, "response_type": "code",
                  "scope": " ".join(SCOPES), **extra}
        code = oauth_driver.consent(f"{sandbox_url}/accounts.google.com/o/oauth2/v2/auth?{urlencode(params)}")["code"]
        return httpx.post(f"{sandbox_url}/oauth2.googleapis.com/token", data={
            "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
            "client_id": CREDENTIALS["YOUTUBE_CLIENT_ID"],
            "client_secret": CREDENTIALS["YOUTUBE_CLIENT_SECRET"]}).json()

    assert "refresh_token" not in authorize()  # online access
    assert "refresh_token" in authorize(access_type="offline")  # first consent
    assert "refresh_token" not in authorize(access_type="offline")  # re-consent without prompt=consent
    assert "refresh_token" in authorize(access_type="offline", prompt="consent")


def test_strict_authorize_rejects_bad_scopes_and_response_types(sandbox_url):
    base = {"client_id": "c", "redirect_uri": REDIRECT, "response_type": "code", "scope": " ".join(SCOPES)}
    url = f"{sandbox_url}/accounts.google.com/o/oauth2/v2/auth"
    comma = httpx.get(url, params={**base, "scope": ",".join(SCOPES)})
    assert comma.status_code == 400 and "invalid_scope" in comma.text
    token = httpx.get(url, params={**base, "response_type": "token"})
    assert token.status_code == 400 and "unsupported_response_type" in token.text
    assert httpx.get(url, params=base).status_code == 200


def test_strict_channel_list_needs_a_read_scope(sandbox_url, emu):
    params = {"client_id": CREDENTIALS["YOUTUBE_CLIENT_ID"], "redirect_uri": REDIRECT, "response_type": "code",
              "scope": SCOPES[0]}
    code = oauth_driver.consent(f"{sandbox_url}/accounts.google.com/o/oauth2/v2/auth?{urlencode(params)}")["code"]
    access = httpx.post(f"{sandbox_url}/oauth2.googleapis.com/token", data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
        "client_id": CREDENTIALS["YOUTUBE_CLIENT_ID"],
        "client_secret": CREDENTIALS["YOUTUBE_CLIENT_SECRET"]}).json()["access_token"]
    answer = httpx.get(f"{api(sandbox_url)}/youtube/v3/channels", params={"part": "snippet", "mine": "true"},
                       headers={"Authorization": f"Bearer {access}"})
    assert answer.status_code == 403 and reason(answer) == "insufficientPermissions"
    no_part = httpx.get(f"{api(sandbox_url)}/youtube/v3/videos", params={"id": "x"},
                        headers={"Authorization": f"Bearer {access}"})
    assert no_part.status_code in (400, 403)


def test_strict_list_calls_need_part_and_a_filter(sandbox_url, token):
    auth = {"Authorization": f"Bearer {token}"}
    no_part = httpx.get(f"{api(sandbox_url)}/youtube/v3/channels", params={"mine": "true"}, headers=auth)
    assert no_part.status_code == 400 and reason(no_part) == "required"
    bad_part = httpx.get(f"{api(sandbox_url)}/youtube/v3/videos", params={"part": "snippet,bogus", "id": "x"},
                         headers=auth)
    assert bad_part.status_code == 400 and reason(bad_part) == "unknownPart"
    no_filter = httpx.get(f"{api(sandbox_url)}/youtube/v3/channels", params={"part": "snippet"}, headers=auth)
    assert no_filter.status_code == 400 and reason(no_filter) == "missingRequiredParameter"


# ------------------------------------------------------------------------------ memory
def test_streamed_300mb_upload_stays_small(client, account, emu, platform_env, control_url):
    size = 300_000_000
    started = time.perf_counter()
    report = publish_in_child("youtube", platform_env, account={
        "id": 1, "account_id": account.account_id, "access_token": account.access_token,
        "refresh_token": account.refresh_token}, content={
        "caption": "A long ride", "video_url": media_url(size, 600), "privacy_level": "PUBLIC"},
        control_url=control_url)
    elapsed = time.perf_counter() - started
    print(f"\nyoutube 300 MB upload: RSS growth {report['growth_mib']:.1f} MiB "
          f"(peak {report['rss_peak_kb'] // 1024} MiB), {report['steps']} steps, {elapsed:.1f} s")
    assert report["done"] and report["bytes_reported"] == size
    assert report["growth_mib"] < 64
    [session] = emu.sessions.values()
    assert session.received == size and session.video_id == report["platform_post_id"]
    assert len(emu.published) == 1
