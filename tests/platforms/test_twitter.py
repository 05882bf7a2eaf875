"""X (Twitter) contract tests: the client against the emulator over real loopback HTTP.

Connect, refresh with rotation, revoke; every publish mode driven step by step (both media
upload shapes); processing with the clock; metrics and quota; each mapped error from fault
injection; unknown outcomes settled by `reconcile`; a strictness suite of raw calls; the weighted
text counter; and a 300 MB streamed upload measured in a child process.
"""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from bridge.platforms.base import AccountRef, CommentTarget, PostContent, PublishJob, TokenSet
from bridge.platforms.errors import (
    RateLimited,
    Reauthorize,
    Rejected,
    TokenExpired,
    Transient,
    UnknownOutcome,
)
from bridge.platforms.twitter import TwitterClient, url_spans, weighted_length
from tests.platforms import oauth_driver
from tests.platforms.conftest import media_url
from tests.platforms.memory import publish_in_child

MIB = 1024 * 1024


# ------------------------------------------------------------------------------ fixtures
@pytest.fixture
def client(platform_settings) -> TwitterClient:
    return TwitterClient(platform_settings)


@pytest.fixture
def emu(sandbox):
    return sandbox.emulator("twitter")


@pytest.fixture
def api(sandbox_url):
    with httpx.Client(base_url=f"{sandbox_url}/api.x.com", timeout=10) as http:
        yield http


def connect(client: TwitterClient, user: str = "creator1"):
    verifier, challenge = client.new_pkce()
    answer = oauth_driver.consent(client.authorization_url("state-123", challenge), user=user)
    assert answer["state"] == "state-123"
    tokens = client.exchange_code(answer["code"], verifier)
    [profile] = client.fetch_accounts(tokens)
    return profile


@pytest.fixture
def account(client, sandbox) -> AccountRef:
    profile = connect(client)
    return AccountRef(id=1, account_id=profile.account_id, access_token=profile.tokens.access_token,
                      refresh_token=profile.tokens.refresh_token, username=profile.username)


def bearer(account: AccountRef) -> dict[str, str]:
    return {"Authorization": f"Bearer {account.access_token}"}


def make_job(client: TwitterClient, account: AccountRef, **content) -> PublishJob:
    post = PostContent(**{"media_type": "video", "caption": "Sunset timelapse", **content})
    return PublishJob(post_id=1, account=account, content=post, caption=client.compose_caption(post))


def step(client: TwitterClient, job: PublishJob):
    """One step, with the checkpoint persisted as JSON between steps (as the engine does)."""
    result = client.publish_step(job)
    job.checkpoint = json.loads(json.dumps(result.checkpoint))
    return result


def drive(client: TwitterClient, job: PublishJob, emu, limit: int = 300):
    """Steps to completion; processing waits are ended with the emulator's `process()`."""
    stages = [job.checkpoint.get("stage", "init")]
    for _ in range(limit):
        result = step(client, job)
        stages.append(result.checkpoint["stage"])
        if result.done:
            return result, stages
        if result.wait is not None:
            emu.process()
    raise AssertionError(f"no completion after {limit} steps: {stages[-5:]}")


def run_until(client: TwitterClient, job: PublishJob, stage: str, emu=None, limit: int = 100) -> None:
    """Steps until the checkpoint is at `stage` (processing ended by `emu.process()` if given)."""
    for _ in range(limit):
        if job.checkpoint.get("stage") == stage:
            return
        if step(client, job).wait is not None and emu is not None:
            emu.process()
    raise AssertionError(f"never reached {stage}")


# ------------------------------------------------------------------------- text counting
@pytest.mark.parametrize("text, length", [
    ("a" * 280, 280),
    ("日" * 140, 280),
    ("한국어 텍스트", 13),
    ("café — “quotes” ′", 17),
    ("…", 2),
    ("©", 2),
    ("👍🏽", 2),
    ("👨‍👩‍👧", 2),
    ("🏳️‍🌈", 2),
    ("🇫🇷", 2),
    ("1️⃣", 2),
    ("https://aurareels.com/v/" + "x" * 200, 23),
    ("see aurareels.com/watch?v=1 now", 31),
    ("example.com?q=1", 27),  # no path: a query is not part of a URL written without a scheme
    ("node.js and file.txt", 20),
    ("http://t.co/abc,foo", 27),
    ("line\r\nbreak", 10),
    ("e\u0301", 1),  # NFC: one character
])
def test_weighted_length_counts_as_x_does(text, length):
    assert weighted_length(text) == length


def test_url_spans_find_urls_with_and_without_scheme():
    text = "a https://x.com/i b www.example.org c mail@host.com"
    assert [text[s:e] for s, e in url_spans(text)] == ["https://x.com/i", "www.example.org"]


def test_requirements_use_weighted_length(client):
    over = client.validate(PostContent(caption="日" * 141, media_type="text"))
    assert [i.code for i in over] == ["caption_too_long"]
    assert "weighted characters" in over[0].message
    assert client.validate(PostContent(caption="日" * 140, media_type="text")) == []
    images = PostContent(caption="x", media_type="image", extra={"image_urls": ["https://a.example/1.png"] * 5})
    assert "too_many_images" in [i.code for i in client.validate(images)]


# -------------------------------------------------------------------------------- OAuth
def test_authorize_url_uses_pkce_and_space_separated_scopes(client):
    verifier, challenge = client.new_pkce()
    url = httpx.URL(client.authorization_url("s1", challenge))
    assert url.path.endswith("/x.com/i/oauth2/authorize")
    params = dict(url.params)
    assert params["code_challenge_method"] == "S256" and params["code_challenge"] == challenge
    assert set(params["scope"].split(" ")) >= {"tweet.write", "users.read", "offline.access", "media.write"}


def test_connect_returns_profile_and_rotating_tokens(client, emu):
    profile = connect(client, user="night_owl")
    assert profile.account_id.isdigit() and profile.username == "night_owl"
    assert profile.account_name == "Night Owl"
    assert profile.picture_url.startswith("https://pbs.twimg.com/")
    tokens = profile.tokens
    assert tokens.refresh_token and "offline.access" in tokens.scope
    lifetime = tokens.expires_at - datetime.now(timezone.utc).replace(tzinfo=None)
    assert timedelta(hours=1, minutes=58) < lifetime <= timedelta(hours=2)


def test_denied_consent_redirects_with_access_denied(client):
    _, challenge = client.new_pkce()
    answer = oauth_driver.consent(client.authorization_url("s2", challenge), decision="deny")
    assert answer["error"] == "access_denied" and answer["state"] == "s2" and "code" not in answer


def test_code_is_single_use(client):
    verifier, challenge = client.new_pkce()
    code = oauth_driver.consent(client.authorization_url("s", challenge))["code"]
    client.exchange_code(code, verifier)
    with pytest.raises(Reauthorize) as caught:
        client.exchange_code(code, verifier)
    assert caught.value.code == "oauth_invalid_grant"


def test_code_expires_after_thirty_seconds(client, sandbox):
    verifier, challenge = client.new_pkce()
    code = oauth_driver.consent(client.authorization_url("s", challenge))["code"]
    sandbox.clock.advance(31)
    with pytest.raises(Reauthorize):
        client.exchange_code(code, verifier)


def test_refresh_rotates_and_the_old_refresh_token_is_refused(client, account):
    fresh = client.refresh(account.refresh_token)
    assert fresh.refresh_token and fresh.refresh_token != account.refresh_token
    assert fresh.access_token != account.access_token
    with pytest.raises(Reauthorize) as caught:
        client.refresh(account.refresh_token)
    assert caught.value.platform_code == "invalid_request"
    assert client.refresh(fresh.refresh_token).access_token  # the rotated one works once


def test_expired_access_token_is_token_expired_and_refresh_recovers(client, account, sandbox):
    sandbox.clock.advance(7201)
    with pytest.raises(TokenExpired):
        client.fetch_accounts(TokenSet(access_token=account.access_token))
    fresh = client.refresh(account.refresh_token)
    assert client.fetch_accounts(fresh)[0].account_id == account.account_id


def test_revoke_ends_both_tokens(client, account, api):
    assert client.revoke(account) is True
    assert api.get("/2/users/me", headers=bearer(account)).status_code == 401
    with pytest.raises(Reauthorize):
        client.refresh(account.refresh_token)


# ---------------------------------------------------------------------------- publishing
def test_video_publish_step_by_step(client, account, emu):
    size = 9 * MIB + 12345  # three segments of 4 MiB at most
    job = make_job(client, account, video_url=media_url(size, 20.0), hashtags=["reels"])
    seen: list[tuple[int, int]] = []
    job.progress = lambda sent, total: seen.append((sent, total))

    first = step(client, job)
    assert first.checkpoint["stage"] == "append" and first.checkpoint["media_id"]
    result, stages = drive(client, job, emu)
    assert stages == ["append", "append", "append", "finalize", "processing", "post", "posted"]
    assert seen == [(4 * MIB, size), (8 * MIB, size), (size, size)]
    media = emu.snapshot()["media"][first.checkpoint["media_id"]]
    assert media == {"state": "succeeded", "category": "tweet_video", "total": size, "received": size,
                     "owner": account.account_id, "segments": 3}
    [post] = emu.published
    assert post["text"] == "Sunset timelapse\n\n#reels" and post["media_ids"] == [first.checkpoint["media_id"]]
    assert result.platform_post_id == post["id"]
    assert result.platform_post_url == f"https://x.com/creator1/status/{post['id']}"
    # a step after completion (a crash after success) completes again without posting
    assert step(client, job).done and len(emu.published) == 1


def test_video_upload_uses_only_the_dedicated_endpoints(platform_settings, account, emu, sandbox):
    client = TwitterClient(platform_settings, video_category="amplify_video")
    job = make_job(client, account, video_url=media_url(5 * MIB, 30.0))
    result, stages = drive(client, job, emu)
    assert stages.count("append") == 2 and result.done
    posts = [e for e in sandbox.requests("twitter") if e["method"] == "POST" and "/media/" in e["path"] + "/"]
    assert posts and all(e["path"].endswith(("/initialize", "/append", "/finalize")) for e in posts)
    assert all("command" not in e["query"] for e in posts)
    statuses = [e for e in sandbox.requests("twitter") if e["method"] == "GET" and e["path"] == "/2/media/upload"]
    assert all(e["query"]["command"] == "STATUS" for e in statuses)  # the one call that keeps command=
    [media] = emu.snapshot()["media"].values()
    assert media["category"] == "amplify_video" and media["received"] == 5 * MIB


def test_strict_retired_command_form_is_refused(account, api, emu):
    # X retired command=INIT|APPEND|FINALIZE on /2/media/upload in 2025
    for command, data in (("INIT", {"media_type": "video/mp4", "total_bytes": "1000", "media_category": "tweet_video"}),
                          ("APPEND", {"media_id": "1", "segment_index": "0"}), ("FINALIZE", {"media_id": "1"})):
        answer = api.post("/2/media/upload", headers=bearer(account), data={"command": command, **data},
                          files={"media": ("blob", b"\0" * 10)} if command == "APPEND" else None)
        assert answer.status_code == 400, command
        assert "no longer supported" in answer.json()["errors"][0]["message"]
    assert not emu.media


def test_processing_moves_with_the_clock(client, account, emu, sandbox):
    emu.configure(processing_seconds=10, pending_seconds=2, check_after_secs=3)
    job = make_job(client, account, video_url=media_url(1 * MIB, 10.0))
    run_until(client, job, "finalize")
    result = step(client, job)
    assert result.checkpoint["stage"] == "processing" and result.wait == 3
    sandbox.clock.advance(3)
    assert step(client, job).wait == 3  # in_progress
    status = [e for e in sandbox.requests("twitter") if e["query"].get("command") == "STATUS"]
    assert status and status[-1]["status"] == 200
    sandbox.clock.advance(8)
    assert step(client, job).checkpoint["stage"] == "post"
    assert step(client, job).done


def test_text_post(client, account, emu):
    job = make_job(client, account, media_type="text", caption="Hello from AuraReels https://aurareels.com/x")
    result, stages = drive(client, job, emu)
    assert stages == ["init", "post", "posted"]
    tweet = emu.tweets[result.platform_post_id]
    assert tweet["text"].startswith("Hello from AuraReels https://t.co/")  # X wraps links


def test_image_post_with_two_images(client, account, emu):
    urls = [media_url(200_000, name=f"p{i}.png", type="image/png") for i in range(2)]
    job = make_job(client, account, media_type="image", caption="Stills", extra={"image_urls": urls})
    result, stages = drive(client, job, emu)
    assert stages.count("init") == 2 and "processing" not in stages  # images need no processing
    [post] = emu.published
    assert len(post["media_ids"]) == 2
    assert {emu.media[m]["category"] for m in post["media_ids"]} == {"tweet_image"}


def test_too_long_video_is_refused_before_upload(client, account, sandbox):
    job = make_job(client, account, video_url=media_url(1 * MIB, 200.0))
    with pytest.raises(Rejected) as caught:
        step(client, job)
    assert caught.value.code == "video_too_long"
    assert not [e for e in sandbox.requests("twitter") if "/media/" in e["path"]]


def test_processing_failure_is_rejected(platform_settings, account, emu):
    # the client allows long videos, the emulator's tweet_video category does not
    client = TwitterClient(platform_settings, max_video_seconds=600)
    job = make_job(client, account, video_url=media_url(1 * MIB, 200.0))
    run_until(client, job, "processing")
    emu.process()
    with pytest.raises(Rejected) as caught:
        step(client, job)
    assert caught.value.code == "media_processing_failed" and caught.value.platform_code == "InvalidMedia"
    assert not emu.published


def test_expired_upload_starts_again(client, account, emu, sandbox):
    job = make_job(client, account, video_url=media_url(6 * MIB, 10.0))
    step(client, job)
    step(client, job)  # one segment sent
    first_id = job.checkpoint["media_id"]
    sandbox.clock.advance(86401)
    account.access_token = client.refresh(account.refresh_token).access_token  # 2 h tokens ran out too
    assert step(client, job).checkpoint["stage"] == "init"  # X forgot the media: upload again
    result, _ = drive(client, job, emu)
    assert result.done and emu.published[0]["media_ids"] != [first_id]


# ------------------------------------------------------------------------ metrics, quota
def test_metrics(client, account, emu):
    result, _ = drive(client, make_job(client, account, media_type="text", caption="metrics"), emu)
    emu.engage(result.platform_post_id, impression_count=1500, like_count=40, reply_count=7, retweet_count=5,
               quote_count=2)
    metrics = client.fetch_metrics(account, result.platform_post_id)
    assert (metrics.views, metrics.likes, metrics.comments, metrics.shares) == (1500, 40, 7, 7)


def test_metrics_read_bookmarks_as_saves_and_grow_with_the_sandbox_clock(client, account, emu, sandbox):
    result, _ = drive(client, make_job(client, account, media_type="text", caption="bookmarked"), emu)
    emu.engage(result.platform_post_id, impression_count=100, bookmark_count=4)
    first = client.fetch_metrics(account, result.platform_post_id)
    assert (first.views, first.saves, first.reach) == (100, 4, None)
    sandbox.clock.advance(90 * 60)  # X's access tokens live 2 h
    later = client.fetch_metrics(account, result.platform_post_id)
    assert later.views > 100 and later.saves >= 4


def test_metrics_of_a_deleted_post_is_not_found(client, account, emu, api):
    result, _ = drive(client, make_job(client, account, media_type="text", caption="gone soon"), emu)
    assert api.delete(f"/2/tweets/{result.platform_post_id}", headers=bearer(account)).json() == {
        "data": {"deleted": True}}
    with pytest.raises(Rejected) as caught:
        client.fetch_metrics(account, result.platform_post_id)
    assert caught.value.code == "not_found"


def test_quota_reads_no_posts(client, account, emu, sandbox):
    # every post read is billed under pay-per-use: the bridge counts its own posts instead
    for caption in ("one", "two"):
        drive(client, make_job(client, account, media_type="text", caption=caption), emu)
    sandbox.log.clear()
    assert client.quota(account) is None and sandbox.requests("twitter") == []


def test_credits_exhausted_is_its_own_error(client, account, emu):
    emu.configure(credits=0.02)  # one plain post ($0.015), not two
    drive(client, make_job(client, account, media_type="text", caption="paid for"), emu)
    job = make_job(client, account, media_type="text", caption="no credits left")
    step(client, job)  # nothing to upload: ready to post
    with pytest.raises(Rejected) as caught:
        step(client, job)
    assert caught.value.code == "credits_exhausted" and caught.value.http_status == 402
    assert "credits" in caught.value.message and "administrator" in caught.value.message
    assert len(emu.published) == 1


def test_reconcile_reads_only_a_few_posts(client, account, emu, sandbox):
    job = make_job(client, account, media_type="text", caption="lost once")
    step(client, job)
    sandbox.inject("twitter", kind="lost", path=r"^/2/tweets$")
    with pytest.raises(UnknownOutcome):
        step(client, job)
    settled = client.reconcile(job)
    assert settled.done
    [read] = [e for e in sandbox.requests("twitter") if e["path"].endswith("/tweets") and e["method"] == "GET"]
    assert int(read["query"]["max_results"]) <= 10


# ---------------------------------------------------------------------------- first comment
def test_first_comment_is_a_reply_to_the_post(client, account, emu):
    result, _ = drive(client, make_job(client, account, media_type="text", caption="Launch day"), emu)
    target = CommentTarget(result.platform_post_id, result.platform_post_url)
    reply = client.post_comment(account, target, "Details: https://aurareels.com/launch")
    assert emu.snapshot()["comments"][0]["id"] == reply and emu.tweets[reply]["in_reply_to"] == result.platform_post_id
    assert [p["id"] for p in emu.published] == [result.platform_post_id]  # a reply is not a second post of ours
    assert emu.tweets[result.platform_post_id]["public_metrics"]["reply_count"] == 1
    since = datetime.now(timezone.utc) - timedelta(minutes=1)
    assert client.find_comment(account, target, "Details: https://aurareels.com/launch", since) == reply
    assert client.find_comment(account, target, "another reply", since) is None


def test_lost_reply_is_found_and_a_resend_is_recognised_as_the_same_reply(client, account, emu, sandbox):
    result, _ = drive(client, make_job(client, account, media_type="text", caption="Launch day"), emu)
    target = CommentTarget(result.platform_post_id)
    sandbox.inject("twitter", kind="lost", path=r"^/2/tweets$", method="POST")
    with pytest.raises(UnknownOutcome):
        client.post_comment(account, target, "First!")
    [made] = emu.snapshot()["comments"]
    # sent again, X answers "duplicate content": the reply that is already there is the answer
    assert client.post_comment(account, target, "First!") == made["id"]
    assert len(emu.snapshot()["comments"]) == 1


def test_reply_to_a_deleted_post_is_refused(client, account, emu, api):
    result, _ = drive(client, make_job(client, account, media_type="text", caption="Launch day"), emu)
    api.delete(f"/2/tweets/{result.platform_post_id}", headers=bearer(account))
    with pytest.raises(Rejected) as refused:
        client.post_comment(account, CommentTarget(result.platform_post_id), "First!")
    assert refused.value.code == "reply_target_gone"


def test_strict_reply_shape(account, api):
    posted = api.post("/2/tweets", json={"text": "parent"}, headers=bearer(account)).json()["data"]["id"]
    extra = api.post("/2/tweets", json={"text": "r", "reply": {"in_reply_to_tweet_id": posted, "x": 1}},
                     headers=bearer(account))
    assert extra.status_code == 400 and "$.reply.x" in extra.json()["errors"][0]["message"]
    bad = api.post("/2/tweets", json={"text": "r", "reply": {"in_reply_to_tweet_id": "abc"}}, headers=bearer(account))
    assert bad.status_code == 400 and "in_reply_to_tweet_id" in bad.json()["errors"][0]["message"]
    gone = api.post("/2/tweets", json={"text": "r", "reply": {"in_reply_to_tweet_id": "1999"}}, headers=bearer(account))
    assert gone.status_code == 403 and "deleted or not visible" in gone.json()["detail"]
    made = api.post("/2/tweets", json={"text": "r", "reply": {"in_reply_to_tweet_id": posted}}, headers=bearer(account))
    assert made.status_code == 201
    read = api.get(f"/2/tweets/{made.json()['data']['id']}", headers=bearer(account),
                   params={"tweet.fields": "referenced_tweets,conversation_id,in_reply_to_user_id"}).json()["data"]
    assert read["referenced_tweets"] == [{"type": "replied_to", "id": posted}] and read["conversation_id"] == posted
    assert read["in_reply_to_user_id"] == account.account_id


# ---------------------------------------------------------------------------- errors
def test_rate_limit_fault_gives_seconds_until_reset(client, account, sandbox):
    sandbox.inject("twitter", kind="rate_limit", path=r"^/2/tweets$", retry_after=120)
    job = make_job(client, account, media_type="text", caption="limited")
    step(client, job)
    with pytest.raises(RateLimited) as caught:
        step(client, job)
    assert caught.value.code == "rate_limited" and 100 < caught.value.retry_after <= 121


def test_fifteen_minute_window_is_enforced_with_headers(client, account, emu, api):
    emu.configure(limit_tweets_create=2)
    answers = [api.post("/2/tweets", json={"text": f"post {i}"}, headers=bearer(account)) for i in range(3)]
    assert [a.status_code for a in answers] == [201, 201, 429]
    assert [a.headers["x-rate-limit-remaining"] for a in answers] == ["1", "0", "0"]
    assert all(a.headers["x-rate-limit-limit"] == "2" for a in answers)
    job = make_job(client, account, media_type="text", caption="one more")
    step(client, job)
    with pytest.raises(RateLimited) as caught:
        step(client, job)
    assert 800 < caught.value.retry_after <= 901


def test_daily_post_cap(client, account, emu):
    emu.configure(user_posts_per_24h=1)
    drive(client, make_job(client, account, media_type="text", caption="first"), emu)
    job = make_job(client, account, media_type="text", caption="second")
    step(client, job)
    with pytest.raises(RateLimited) as caught:
        step(client, job)
    assert caught.value.code == "daily_post_limit" and caught.value.retry_after > 86000


def test_duplicate_content_is_rejected(client, account, emu):
    drive(client, make_job(client, account, media_type="text", caption="same words"), emu)
    job = make_job(client, account, media_type="text", caption="same words")
    step(client, job)
    with pytest.raises(Rejected) as caught:
        step(client, job)
    assert caught.value.code == "duplicate_content" and caught.value.http_status == 403
    assert len(emu.published) == 1


@pytest.mark.parametrize("name, error, code", [
    ("unauthorized", TokenExpired, "token_expired"),
    ("usage_capped", RateLimited, "usage_capped"),
    ("credits_depleted", Rejected, "credits_exhausted"),
    ("daily_limit", RateLimited, "daily_post_limit"),
    ("legacy_rate_limit", RateLimited, "rate_limited"),
    ("not_permitted", Rejected, "not_permitted"),
    ("client_forbidden", Rejected, "app_not_permitted"),
    ("unsupported_authentication", Reauthorize, "reauthorize"),
    ("over_capacity", Transient, "platform_unavailable"),
])
def test_named_errors_map_into_the_taxonomy(client, account, emu, sandbox, name, error, code):
    result, _ = drive(client, make_job(client, account, media_type="text", caption="named"), emu)
    sandbox.inject("twitter", kind="error", error=name, path=r"^/2/tweets/\d+$")
    with pytest.raises(error) as caught:
        client.fetch_metrics(account, result.platform_post_id)
    assert caught.value.code == code and caught.value.message
    assert account.access_token not in caught.value.message


@pytest.mark.parametrize("name, code", [("invalid_media", "media_invalid"), ("text_too_long", "text_too_long")])
def test_named_post_errors_are_rejected(client, account, sandbox, name, code):
    sandbox.inject("twitter", kind="error", error=name, path=r"^/2/tweets$")
    job = make_job(client, account, media_type="text", caption="refused")
    step(client, job)
    with pytest.raises(Rejected) as caught:
        step(client, job)
    assert caught.value.code == code


def test_5xx_on_a_read_is_transient_and_on_the_post_unknown(client, account, emu, sandbox):
    job = make_job(client, account, video_url=media_url(1 * MIB, 5.0))
    run_until(client, job, "processing")
    sandbox.inject("twitter", kind="status", status=503, path=r"^/2/media/upload$", method="GET")
    with pytest.raises(Transient):
        step(client, job)
    emu.process()
    assert step(client, job).checkpoint["stage"] == "post"
    sandbox.inject("twitter", kind="status", status=500, path=r"^/2/tweets$")
    with pytest.raises(UnknownOutcome):
        step(client, job)
    assert not emu.published
    settled = client.reconcile(job)  # nothing was posted: post again
    assert settled.checkpoint["stage"] == "post" and settled.checkpoint["reconciled"]
    job.checkpoint = settled.checkpoint
    assert step(client, job).done and len(emu.published) == 1


@pytest.mark.parametrize("timeout", [False, True])
def test_lost_post_is_found_by_reconcile(client, account, emu, sandbox, timeout):
    sandbox.inject("twitter", kind="lost", path=r"^/2/tweets$", timeout=timeout, delay=2.0)
    job = make_job(client, account, media_type="text", caption="Did it go out? https://aurareels.com/a & more")
    step(client, job)
    with pytest.raises(UnknownOutcome) as caught:
        step(client, job)
    assert caught.value.code == ("timeout" if timeout else "unknown_outcome")
    [post] = emu.published
    settled = client.reconcile(job)  # job.checkpoint is the one before the failed step
    assert settled.done and settled.platform_post_id == post["id"]
    job.checkpoint = settled.checkpoint
    assert step(client, job).platform_post_id == post["id"] and len(emu.published) == 1


def test_lost_video_post_is_found_by_its_media(client, account, emu, sandbox):
    job = make_job(client, account, video_url=media_url(1 * MIB, 5.0), caption="")
    run_until(client, job, "post", emu)
    sandbox.inject("twitter", kind="lost", path=r"^/2/tweets$")
    with pytest.raises(UnknownOutcome):
        step(client, job)
    settled = client.reconcile(job)
    assert settled.done and settled.platform_post_id == emu.published[0]["id"]


def test_duplicate_after_reconcile_is_recognised_as_our_post(client, account, emu):
    first, _ = drive(client, make_job(client, account, media_type="text", caption="landed late"), emu)
    job = make_job(client, account, media_type="text", caption="landed late")
    step(client, job)
    job.checkpoint["reconciled"] = True  # as if the timeline had not shown it yet during reconcile
    assert step(client, job).platform_post_id == first.platform_post_id and len(emu.published) == 1


def test_lost_finalize_is_settled_by_status(client, account, emu, sandbox):
    job = make_job(client, account, video_url=media_url(1 * MIB, 5.0))
    run_until(client, job, "finalize")
    sandbox.inject("twitter", kind="lost", path=r"/finalize$")
    with pytest.raises(UnknownOutcome):
        step(client, job)
    settled = client.reconcile(job)
    assert settled.checkpoint["stage"] == "processing"  # finalized after all
    job.checkpoint = settled.checkpoint
    result, _ = drive(client, job, emu)
    assert result.done


def test_unfinalized_upload_reconciles_to_finalize_again(client, account, emu, sandbox):
    job = make_job(client, account, video_url=media_url(1 * MIB, 5.0))
    run_until(client, job, "finalize")
    sandbox.inject("twitter", kind="timeout", path=r"/finalize$", delay=2.0)
    with pytest.raises(UnknownOutcome):
        step(client, job)
    assert client.reconcile(job).checkpoint == job.checkpoint
    result, _ = drive(client, job, emu)
    assert result.done


def test_chunk_failure_resumes_from_the_checkpoint(client, account, emu, sandbox):
    size = 10 * MIB
    job = make_job(client, account, video_url=media_url(size, 10.0))
    step(client, job)
    step(client, job)  # segment 0 in
    sandbox.inject("twitter", kind="status", status=503, path=r"/append$")
    with pytest.raises(Transient):
        step(client, job)
    assert job.checkpoint["segment"] == 1 and job.checkpoint["offset"] == 4 * MIB
    sandbox.inject("twitter", kind="lost", path=r"/append$")  # taken, answer lost: sent again
    with pytest.raises(Transient):
        step(client, job)
    result, _ = drive(client, job, emu)
    media = emu.media[emu.published[0]["media_ids"][0]]
    assert result.done and media["received"] == size and len(media["segments"]) == 3


# ---------------------------------------------------------------------------- strictness
def _token_body(client: TwitterClient, **fields) -> dict:
    return {"grant_type": "authorization_code", "redirect_uri": client.redirect_uri, **fields}


def _fresh_code(client: TwitterClient) -> tuple[str, str]:
    verifier, challenge = client.new_pkce()
    return oauth_driver.consent(client.authorization_url("s", challenge))["code"], verifier


def test_strict_token_endpoint_wants_a_form(client, api):
    code, verifier = _fresh_code(client)
    answer = api.post("/2/oauth2/token", json=_token_body(client, code=code, code_verifier=verifier),
                      auth=(client.client_id, client.client_secret))
    assert answer.status_code == 400
    assert answer.json() == {"error": "invalid_request", "error_description": "Missing required parameter [grant_type]."}


def test_strict_confidential_client_needs_basic_auth(client, api):
    code, verifier = _fresh_code(client)
    answer = api.post("/2/oauth2/token", data=_token_body(client, code=code, code_verifier=verifier,
                                                           client_id=client.client_id))
    assert answer.status_code == 401
    assert answer.json() == {"error": "invalid_client", "error_description": "Missing valid authorization header"}


def test_strict_code_verifier_must_match_the_challenge(client, api):
    code, _ = _fresh_code(client)
    answer = api.post("/2/oauth2/token", data=_token_body(client, code=code, code_verifier="x" * 64),
                      auth=(client.client_id, client.client_secret))
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_request"
    assert "code verifier" in answer.json()["error_description"]


def test_strict_authorize_requires_pkce(client):
    url = client.authorization_url("s")  # no challenge
    page = httpx.get(url)
    assert page.status_code == 400 and "weren't able to give access" in page.text


def test_strict_post_wants_json(account, api):
    answer = api.post("/2/tweets", data={"text": "form"}, headers=bearer(account))
    assert answer.status_code == 400
    assert answer.json()["errors"][0]["message"] == "Requests with bodies must have content-type of application/json."
    assert answer.json()["type"] == "https://api.twitter.com/2/problems/invalid-request"


def test_strict_post_refuses_unknown_fields(account, api):
    answer = api.post("/2/tweets", json={"text": "hi", "visibility": "public"}, headers=bearer(account))
    assert answer.status_code == 400 and "$.visibility" in answer.json()["errors"][0]["message"]


def test_strict_weighted_length_limit(account, api):
    too_long = api.post("/2/tweets", json={"text": "日" * 141}, headers=bearer(account))
    assert too_long.status_code == 400 and too_long.json()["errors"][0]["message"] == "Your Tweet text is too long."
    assert api.post("/2/tweets", json={"text": "日" * 140}, headers=bearer(account)).status_code == 201


def test_strict_duplicate_content_shape(account, api):
    assert api.post("/2/tweets", json={"text": "twice"}, headers=bearer(account)).status_code == 201
    answer = api.post("/2/tweets", json={"text": "twice"}, headers=bearer(account))
    assert answer.status_code == 403
    assert answer.json() == {"title": "Forbidden", "type": "about:blank", "status": 403,
                             "detail": "You are not allowed to create a Tweet with duplicate content."}


def _init(api, account, total: int, media_type: str = "video/mp4", category: str = "tweet_video"):
    return api.post("/2/media/upload/initialize", headers=bearer(account),
                    json={"media_type": media_type, "total_bytes": total, "media_category": category})


def _append(api, account, media_id: str, index: int, size: int):
    return api.post(f"/2/media/upload/{media_id}/append", headers=bearer(account),
                    data={"segment_index": str(index)}, files={"media": ("blob", b"\0" * size)})


def test_strict_init_checks_type_category_and_size(account, api):
    wrong = _init(api, account, 1000, "video/mp4", "tweet_image")
    assert wrong.status_code == 400 and "not allowed for media_category" in wrong.json()["errors"][0]["message"]
    big = _init(api, account, 512 * MIB + 1)
    assert big.json()["errors"][0]["message"] == "File size exceeds 536870912 bytes."
    ok = _init(api, account, 1000)
    assert ok.status_code == 200 and ok.json()["data"]["expires_after_secs"] == 86400


def test_strict_segments_in_order_and_at_most_5_mib(account, api):
    media_id = _init(api, account, 12 * MIB).json()["data"]["id"]
    skipped = _append(api, account, media_id, 1, 1000)
    assert skipped.status_code == 400 and "out of order" in skipped.json()["errors"][0]["message"]
    large = _append(api, account, media_id, 0, 5 * MIB + 1)
    assert large.status_code == 400 and "5242880" in large.json()["errors"][0]["message"]
    assert _append(api, account, media_id, 0, 5 * MIB).json()["data"]["expires_at"] > 0


def test_strict_finalize_before_every_byte(account, api):
    media_id = _init(api, account, 2000).json()["data"]["id"]
    _append(api, account, media_id, 0, 1000)
    early = api.post(f"/2/media/upload/{media_id}/finalize", headers=bearer(account))
    assert early.status_code == 400
    assert early.json()["errors"][0]["message"] == "Segments do not add up to provided total file size."


def test_strict_media_must_be_processed_before_posting(account, api):
    media_id = _init(api, account, 1000).json()["data"]["id"]
    _append(api, account, media_id, 0, 1000)
    final = api.post(f"/2/media/upload/{media_id}/finalize", headers=bearer(account)).json()["data"]
    assert final["processing_info"]["state"] == "pending"
    answer = api.post("/2/tweets", json={"text": "too soon", "media": {"media_ids": [media_id]}},
                      headers=bearer(account))
    assert answer.status_code == 400 and answer.json()["errors"][0]["message"] == "Your media IDs are invalid."


def test_strict_scopes_are_enforced(client, api):
    verifier, challenge = client.new_pkce()
    url = httpx.URL(client.authorization_url("s", challenge))
    narrow = url.copy_merge_params({"scope": "tweet.read users.read"})
    tokens = client.exchange_code(oauth_driver.consent(str(narrow))["code"], verifier)
    assert tokens.refresh_token is None  # no offline.access, no refresh token
    answer = api.post("/2/media/upload/initialize", headers={"Authorization": f"Bearer {tokens.access_token}"},
                      json={"media_type": "video/mp4", "total_bytes": 1000, "media_category": "tweet_video"})
    assert answer.status_code == 403 and answer.json()["detail"] == "You are not permitted to perform this action."


def test_strict_expired_token_and_headers_on_every_answer(account, api, sandbox):
    ok = api.get("/2/users/me", headers=bearer(account))
    assert ok.status_code == 200 and ok.headers["x-rate-limit-limit"] == "75"
    sandbox.clock.advance(7201)
    expired = api.get("/2/users/me", headers=bearer(account))
    assert expired.status_code == 401
    assert expired.json() == {"title": "Unauthorized", "type": "about:blank", "status": 401, "detail": "Unauthorized"}
    assert {"x-rate-limit-limit", "x-rate-limit-remaining", "x-rate-limit-reset"} <= set(expired.headers)


def test_strict_api_paths_live_on_the_api_host(account, sandbox_url):
    answer = httpx.post(f"{sandbox_url}/x.com/2/tweets", json={"text": "wrong host"}, headers=bearer(account))
    assert answer.status_code == 404
    assert answer.json() == {"errors": [{"message": "Sorry, that page does not exist", "code": 34}]}


def test_strict_unknown_tweet_fields(account, api):
    answer = api.get("/2/tweets/1234567890", params={"tweet.fields": "public_metrics,bogus"}, headers=bearer(account))
    assert answer.status_code == 400
    assert answer.json()["errors"][0]["message"].startswith("The `tweet.fields` query parameter value [bogus]")


# ------------------------------------------------------------------------- memory
def test_300_mb_upload_streams_in_bounded_memory(client, account, platform_env, control_url, emu):
    size = 300 * 1000 * 1000
    report = publish_in_child(
        "twitter", platform_env,
        {"id": 1, "account_id": account.account_id, "access_token": account.access_token,
         "username": account.username},
        {"caption": "300 MB", "video_url": media_url(size, 60.0), "media_type": "video"},
        control_url)
    print(f"X 300 MB upload: peak RSS {report['rss_before_kb'] / 1024:.1f} -> {report['rss_peak_kb'] / 1024:.1f} MiB "
          f"(growth {report['growth_mib']:.1f} MiB) in {report['steps']} steps")
    assert report["done"] and report["bytes_reported"] == size
    assert report["growth_mib"] < 64
    [post] = emu.published
    media = emu.media[post["media_ids"][0]]
    assert media["received"] == size and media["state"] == "succeeded"
