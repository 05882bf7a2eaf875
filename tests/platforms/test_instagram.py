"""Instagram contract tests: the client against the emulators (Instagram objects, and Facebook
Login from the Facebook emulator) over real loopback HTTP, the emulator's strictness with raw
requests, and the Meta webhook helpers.

Instagram downloads reels itself from their URL: the bridge uploads no bytes, so there is no
streamed-upload memory test here (one test checks that nothing is uploaded)."""
from __future__ import annotations

import hashlib
import hmac
import json
from datetime import datetime, timezone
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from bridge.config import Settings
from bridge.platforms.base import AccountRef, CommentTarget, PostContent, PublishJob, Quota
from bridge.platforms.errors import (
    RateLimited,
    Reauthorize,
    Rejected,
    TokenExpired,
    Transient,
    UnknownOutcome,
)
from bridge.platforms.instagram import InstagramClient
from bridge.platforms.meta import GRAPH_VERSION, verify_signature, verify_subscription
from tests.platforms import oauth_driver
from tests.platforms.conftest import CREDENTIALS, media_url

APP_ID, APP_SECRET = CREDENTIALS["INSTAGRAM_APP_ID"], CREDENTIALS["INSTAGRAM_APP_SECRET"]
GRAPH = "graph.facebook.com"
MB = 1_000_000


# ------------------------------------------------------------------------------------ helpers
@pytest.fixture
def emu(sandbox):
    return sandbox.emulator("instagram")


@pytest.fixture
def login(sandbox):
    """The Facebook emulator serves Facebook Login for both Meta platforms."""
    return sandbox.emulator("facebook")


@pytest.fixture
def client(platform_settings, emu):
    return InstagramClient(platform_settings)


def connect(client, user: str = "creator1"):
    answer = oauth_driver.consent(client.authorization_url("state-ig"), user=user)
    tokens = client.exchange_code(answer["code"])
    return tokens, client.fetch_accounts(tokens)


def as_account(profile) -> AccountRef:
    return AccountRef(id=1, account_id=profile.account_id, access_token=profile.tokens.access_token,
                      refresh_token=profile.tokens.refresh_token, username=profile.username,
                      metadata=profile.metadata)


@pytest.fixture
def account(client) -> AccountRef:
    _, [profile] = connect(client)
    return as_account(profile)


def make_job(client, account, **content) -> PublishJob:
    content.setdefault("caption", "Golden hour #sunset @friend")
    content.setdefault("video_url", media_url(3 * MB, 20))
    content.setdefault("thumbnail_url", "https://media.sandbox.aurareels.test/images/cover.jpg")
    post = PostContent(**content)
    return PublishJob(post_id=9, account=account, content=post, caption=client.compose_caption(post))


def step(client, job):
    result = client.publish_step(job)
    job.checkpoint = json.loads(json.dumps(result.checkpoint))  # persisted as JSON, as the engine does
    return result


def run(client, job, emu, limit=60):
    stages = []
    for _ in range(limit):
        stages.append(job.checkpoint.get("stage") or "start")
        result = step(client, job)
        if result.done:
            return result, stages
        if result.wait is not None:
            emu.process()
    raise AssertionError(f"no completion after {limit} steps: {stages[-5:]}")


def raw(sandbox_url, method, path, token=None, host=GRAPH, **kw):
    """A Graph call as the app's server makes it (the token's appsecret_proof in the query)."""
    headers = kw.pop("headers", {})
    params = dict(kw.pop("params", {}))
    if token:
        headers["Authorization"] = f"Bearer {token}"
        params["appsecret_proof"] = hmac.new(APP_SECRET.encode(), token.encode(), hashlib.sha256).hexdigest()
    url = httpx.URL(f"{sandbox_url}/{host}/{GRAPH_VERSION}/{path}").copy_merge_params(params)
    return httpx.request(method, url, headers=headers, timeout=10, **kw)


def error_of(response) -> dict:
    return response.json()["error"]


# ------------------------------------------------------------------------------------ connect
def test_connect_authorize_exchange_and_accounts(client, login):
    url = client.authorization_url("state-1")
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    assert parts.path.endswith(f"/www.facebook.com/{GRAPH_VERSION}/dialog/oauth")
    assert query["client_id"] == [APP_ID] and query["response_type"] == ["code"]
    assert query["scope"] == ["instagram_basic,instagram_content_publish,instagram_manage_insights,"
                              "instagram_manage_comments,pages_show_list,pages_read_engagement,business_management"]
    assert query["redirect_uri"] == ["https://bridge.example/wp-json/aurareels/v1/social/callback/instagram"]

    answer = oauth_driver.consent(url, user="sunny_days")
    assert answer["state"] == "state-1" and answer["_redirect"].endswith("#_=_")
    tokens = client.exchange_code(answer["code"])
    lifetime = (tokens.expires_at - datetime.now(timezone.utc).replace(tzinfo=None)).total_seconds()
    assert 5183000 < lifetime <= 5183944  # the long-lived token, not the short one
    assert tokens.access_token.startswith("EAAL") and tokens.refresh_token is None
    assert "instagram_content_publish" in tokens.scope.split(",")

    [profile] = client.fetch_accounts(tokens)
    world = login.world
    user = world.users[world.logins["sunny_days"]]
    [page] = [p for p in world.pages.values() if p["owner"] == user["id"]]
    assert profile.account_id == page["ig"] and profile.account_id.startswith("17841")
    assert profile.username == "sunny_days" and profile.account_name == "Sunny Days"
    assert profile.picture_url.endswith("/sunny_days.jpg")
    # the account publishes with its Page's token, made from the long-lived user token: no expiry
    record = world.tokens[profile.tokens.access_token]
    assert record.kind == "page" and record.extra["page"] == page["id"]
    assert profile.tokens.expires_at is None and profile.tokens.refresh_token is None
    assert profile.metadata == {"page_id": page["id"], "page_name": page["name"], "user_id": user["id"]}


def test_login_for_business_authorizes_with_config_id(platform_env, login, emu):
    permissions = ["instagram_basic", "instagram_content_publish", "pages_show_list", "pages_read_engagement"]
    login.configure(login_for_business_apps=[APP_ID], login_configurations={"cfg-ig-3": permissions})
    client = InstagramClient(Settings.from_env({**platform_env, "INSTAGRAM_CONFIG_ID": "cfg-ig-3"}))
    query = parse_qs(urlsplit(client.authorization_url("s")).query)
    assert query["config_id"] == ["cfg-ig-3"] and "scope" not in query
    tokens, [profile] = connect(client)
    assert sorted(tokens.scope.split(",")) == sorted(permissions)
    assert run(client, make_job(client, as_account(profile)), emu)[0].done


def test_every_linked_page_becomes_an_account_across_result_pages(client, login):
    login.configure(accounts_page_max=1)
    user = login.world.ensure_user("multi")
    login.world.add_page(user["id"])
    login.world.add_page(user["id"], instagram=False)  # a Page without Instagram is skipped
    _, profiles = connect(client, user="multi")
    assert len(profiles) == 2
    assert len({p.metadata["page_id"] for p in profiles}) == 2
    accounts_calls = [r for r in login.sandbox.requests("facebook") if r["path"].endswith("/me/accounts")]
    assert len(accounts_calls) == 3  # followed paging.next


def test_denied_consent_redirects_with_meta_error(client):
    answer = oauth_driver.consent(client.authorization_url("s-deny"), decision="deny")
    assert answer["error"] == "access_denied" and answer["error_reason"] == "user_denied"
    assert answer["state"] == "s-deny" and "code" not in answer


def test_login_code_is_single_use(client):
    answer = oauth_driver.consent(client.authorization_url("s"))
    client.exchange_code(answer["code"])
    with pytest.raises(Reauthorize) as caught:
        client.exchange_code(answer["code"])
    assert caught.value.code == "oauth_invalid_grant" and caught.value.platform_code == "100/36009"


def test_page_token_keeps_the_account_alive_past_the_user_tokens_60_days(client, emu, sandbox):
    tokens, [profile] = connect(client)
    sandbox.clock.advance(61 * 86400)  # the long-lived user token has expired by now
    assert run(client, make_job(client, as_account(profile)), emu)[0].done
    with pytest.raises(TokenExpired):  # the user token itself is gone: the Page token does not need it
        client.fetch_accounts(tokens)


def test_an_account_of_the_old_kind_connects_once_more_instead_of_re_exchanging(client, sandbox):
    tokens, _ = connect(client)
    # accounts connected before held the long-lived user token as their "refresh token": Meta
    # documents no way to extend it, so the refresh asks for one more connection
    with pytest.raises(Reauthorize) as caught:
        client.refresh(tokens.access_token)
    assert caught.value.code == "login_expired" and "connect" in caught.value.message
    assert not [r for r in sandbox.requests("facebook") if r["query"].get("grant_type") == "fb_exchange_token"][1:]


def test_revoke_ends_the_login(client, account):
    assert client.revoke(account) is True
    with pytest.raises(Reauthorize) as caught:
        client.quota(account)
    assert caught.value.code == "login_revoked" and caught.value.platform_code == "190/458"
    assert client.revoke(account) is True  # already revoked is fine


# ------------------------------------------------------------------------------------ publishing
def test_publish_reel_step_by_step(client, emu, account):
    job = make_job(client, account)
    first = step(client, job)
    assert first.checkpoint["stage"] == "poll" and first.checkpoint["container_id"].startswith("17890")
    container = emu.containers[first.checkpoint["container_id"]]
    assert container["media_type"] == "REELS" and container["share_to_feed"] is True
    assert container["cover_url"].endswith("/cover.jpg") and container["caption"] == job.caption

    waiting = step(client, job)
    assert waiting.wait == client.poll_seconds and waiting.checkpoint["polls"] == 1
    emu.process()
    published = step(client, job)
    assert published.checkpoint["stage"] == "permalink" and not published.done
    done = step(client, job)
    assert done.done and done.platform_post_id == published.checkpoint["media_id"]
    assert done.platform_post_url.startswith("https://www.instagram.com/reel/")
    [record] = emu.published
    assert record["id"] == done.platform_post_id and record["caption"] == "Golden hour #sunset @friend"
    assert record["media_type"] == "VIDEO"


def test_reel_processing_follows_the_clock(client, emu, sandbox, account):
    job = make_job(client, account)
    step(client, job)
    assert step(client, job).wait
    sandbox.clock.advance(emu.config["video_processing_seconds"])
    assert step(client, job).checkpoint["stage"] == "permalink"


def test_reels_upload_no_bytes_from_the_bridge(client, emu, sandbox, account):
    result, _ = run(client, make_job(client, account, video_url=media_url(250 * MB, 40)), emu)
    assert result.done
    assert not [r for r in sandbox.requests() if r["path"].startswith("/ig-api-upload")]
    media_reads = [r for r in sandbox.requests("media")]
    assert len(media_reads) <= 3  # the probe's small range reads, never the file


def test_publish_image(client, emu, account):
    job = make_job(client, account, media_type="image", video_url=None,
                   extra={"image_url": "https://media.sandbox.aurareels.test/images/photo.jpg"})
    result, stages = run(client, job, emu)
    assert stages == ["start", "poll", "permalink"]
    assert result.platform_post_url.startswith("https://www.instagram.com/p/")
    assert emu.published[0]["media_type"] == "IMAGE"


def test_publish_carousel_children_first(client, emu, account):
    items = ["https://media.sandbox.aurareels.test/images/a.jpg",
             {"url": media_url(2 * MB, 10, name="b.mp4"), "type": "video"},
             "https://media.sandbox.aurareels.test/images/c.jpg"]
    job = make_job(client, account, media_type="carousel", video_url=None, extra={"items": items})
    result, stages = run(client, job, emu)
    assert stages[:3] == ["start", "child", "child"] and "children_poll" in stages
    [record] = emu.published
    assert record["media_type"] == "CAROUSEL_ALBUM"
    media = emu.media[result.platform_post_id]
    assert len(media["children"]) == 3
    assert [emu.containers[c]["media_type"] for c in media["children"]] == ["IMAGE", "VIDEO", "IMAGE"]


def test_published_container_is_never_published_again(client, emu, account):
    job = make_job(client, account)
    result, _ = run(client, job, emu)
    # A crash lost the answer of media_publish: the engine resumes from the poll checkpoint.
    job.checkpoint = {"stage": "poll", "kind": "REELS", "container_id": job.checkpoint["container_id"], "polls": 1}
    again = step(client, job)
    assert again.done and again.platform_post_id == result.platform_post_id
    assert len(emu.published) == 1


def test_expired_container_starts_over(client, emu, sandbox, account):
    job = make_job(client, account)
    first = step(client, job)
    sandbox.clock.advance(emu.config["container_ttl"] + 1)
    restart = step(client, job)
    assert restart.checkpoint == {"stage": "start", "restarts": 1}
    result, _ = run(client, job, emu)
    assert result.done and len(emu.published) == 1
    assert emu.containers[first.checkpoint["container_id"]]["status_code"] == "EXPIRED"


def test_container_download_failure_says_to_check_the_url(client, emu, account):
    job = make_job(client, account)
    step(client, job)
    emu.process(outcome="ERROR", subcode=2207052)
    with pytest.raises(Rejected) as caught:
        step(client, job)
    assert caught.value.code == "media_fetch_failed" and caught.value.platform_code == 2207052
    assert "could not download the video" in caught.value.message and "public" in caught.value.message


def test_unreadable_video_url_fails_before_any_container(client, emu, account):
    job = make_job(client, account, video_url=media_url(3 * MB, 20, status=404))
    with pytest.raises(Rejected) as caught:
        step(client, job)
    assert caught.value.code == "media_fetch_failed" and "404" in caught.value.message
    assert not emu.containers


def test_video_out_of_bounds_is_refused_before_any_container(client, emu, account):
    with pytest.raises(Rejected) as caught:
        step(client, make_job(client, account, video_url=media_url(3 * MB, 1200)))
    assert caught.value.code == "video_too_long" and not emu.containers


def test_transient_container_failure_retries_with_a_new_container(client, emu, account):
    job = make_job(client, account)
    step(client, job)
    emu.process(outcome="ERROR", subcode=2207001)
    assert step(client, job).checkpoint == {"stage": "start", "restarts": 1}
    result, _ = run(client, job, emu)
    assert result.done and len(emu.published) == 1


# ------------------------------------------------------------------------------------ quota, metrics
def test_quota_reads_content_publishing_limit(client, emu, account):
    assert client.quota(account) == Quota(limit=100, used=0, window_seconds=86400)
    emu.configure(quota_total=50)
    run(client, make_job(client, account, media_type="image", video_url=None,
                         extra={"image_url": "https://media.sandbox.aurareels.test/images/p.jpg"}), emu)
    assert client.quota(account) == Quota(limit=50, used=1, window_seconds=86400)


def test_quota_exhausted_waits_until_the_window_frees(client, emu, sandbox, account):
    emu.configure(quota_total=2)
    image = {"media_type": "image", "video_url": None,
             "extra": {"image_url": "https://media.sandbox.aurareels.test/images/p.jpg"}}
    for n in range(2):
        run(client, make_job(client, account, caption=f"post {n}", **image), emu)
    sandbox.clock.advance(3600)
    job = make_job(client, account, caption="post 3", **image)
    step(client, job)  # container created
    with pytest.raises(RateLimited) as caught:
        step(client, job)
    assert caught.value.code == "publish_limit_reached" and caught.value.platform_code == "9/2207042"
    assert 86400 - 3600 <= caught.value.retry_after <= 86400 - 3600 + 120
    assert "limit of 2 API posts" in caught.value.message
    assert len(emu.published) == 2


def test_metrics_from_insights_and_from_the_node_without_insights(client, emu, login, account):
    result, _ = run(client, make_job(client, account), emu)
    emu.set_metrics(result.platform_post_id, views=1500, likes=120, comments=14, shares=9)
    metrics = client.fetch_metrics(account, result.platform_post_id)
    assert (metrics.views, metrics.likes, metrics.comments, metrics.shares) == (1500, 120, 14, 9)
    record = login.world.tokens[account.access_token]
    login.world.revoke(record.user, record.client_id, "instagram_manage_insights")
    fallback = client.fetch_metrics(account, result.platform_post_id)
    assert (fallback.views, fallback.likes, fallback.comments) == (0, 120, 14)


def test_metrics_read_reach_and_saves_and_grow_with_the_sandbox_clock(client, emu, sandbox, account):
    result, _ = run(client, make_job(client, account), emu)
    emu.set_metrics(result.platform_post_id, views=1500, reach=900, likes=120, comments=14, shares=9, saved=33)
    metrics = client.fetch_metrics(account, result.platform_post_id)
    assert (metrics.reach, metrics.saves) == (900, 33)
    sandbox.clock.advance(2 * 86400)
    later = client.fetch_metrics(account, result.platform_post_id)
    assert later.views > 1500 and later.likes > 120 and later.saves > 33 and later.reach > 900
    assert later.reach <= later.views


# ------------------------------------------------------------------------------------ first comment
def test_first_comment_is_posted_under_the_media_and_found_again(client, emu, account):
    result, _ = run(client, make_job(client, account), emu)
    target = CommentTarget(result.platform_post_id, result.platform_post_url)
    comment_id = client.post_comment(account, target, "Link in bio ✨ #sunset")
    [made] = emu.snapshot()["comments"]
    assert made == {"id": comment_id, "object": result.platform_post_id, "message": "Link in bio ✨ #sunset",
                    "author": account.account_id}
    assert client.find_comment(account, target, "Link in bio ✨ #sunset", datetime.now(timezone.utc)) == comment_id
    assert client.find_comment(account, target, "another text", datetime.now(timezone.utc)) is None
    assert client.fetch_metrics(account, result.platform_post_id).comments == 1


def test_first_comment_needs_the_manage_comments_permission(client, emu, login, account):
    result, _ = run(client, make_job(client, account), emu)
    record = login.world.tokens[account.access_token]
    login.world.revoke(record.user, record.client_id, "instagram_manage_comments")
    with pytest.raises(Reauthorize) as refused:
        client.post_comment(account, CommentTarget(result.platform_post_id), "First!")
    assert refused.value.platform_code == 10
    assert emu.snapshot()["comments"] == []


def test_lost_first_comment_answer_is_unknown_and_the_comment_is_found(client, emu, sandbox, account):
    result, _ = run(client, make_job(client, account), emu)
    target = CommentTarget(result.platform_post_id)
    sandbox.inject("instagram", kind="lost", path=r"/comments$", method="POST")
    with pytest.raises(UnknownOutcome):
        client.post_comment(account, target, "First!")
    [made] = emu.snapshot()["comments"]
    assert client.find_comment(account, target, "First!", datetime.now(timezone.utc)) == made["id"]


# ------------------------------------------------------------------------------------ errors and faults
def test_expired_token_is_token_expired(client, sandbox, account):
    sandbox.inject("instagram", kind="error", error="token_expired", path="/media$")
    with pytest.raises(TokenExpired) as caught:
        step(client, make_job(client, account))
    assert caught.value.platform_code == "190/463"


def test_password_change_needs_a_new_login(client, sandbox, account):
    sandbox.inject("instagram", kind="error", error="session_invalidated", path="/media$")
    with pytest.raises(Reauthorize) as caught:
        step(client, make_job(client, account))
    assert caught.value.code == "login_revoked"


def test_throttling_fault_waits_for_the_business_use_case_estimate(client, sandbox, account):
    sandbox.inject("instagram", kind="rate_limit", retry_after=300, path="/media$")
    with pytest.raises(RateLimited) as caught:
        step(client, make_job(client, account))
    assert caught.value.retry_after == 300 and caught.value.platform_code == 80002


def test_business_use_case_budget_per_account(client, emu, account):
    emu.configure(buc_calls_per_window=3, buc_window_seconds=3600)  # the login read the profile once
    client.quota(account)
    client.quota(account)
    with pytest.raises(RateLimited) as caught:
        client.quota(account)
    assert caught.value.code == "rate_limited" and caught.value.retry_after == 3600


def test_named_rejection(client, sandbox, account):
    sandbox.inject("instagram", kind="error", error="abusive", path="/media$")
    with pytest.raises(Rejected) as caught:
        step(client, make_job(client, account))
    assert caught.value.code == "blocked" and caught.value.platform_code == 368


def test_server_error_on_a_read_is_transient(client, sandbox, account):
    job = make_job(client, account)
    step(client, job)
    sandbox.inject("instagram", kind="status", status=503, method="GET")
    with pytest.raises(Transient):
        step(client, job)


def test_not_ready_answer_of_media_publish_waits(client, emu, sandbox, account):
    job = make_job(client, account)
    step(client, job)
    emu.process()
    sandbox.inject("instagram", kind="error", error="not_ready", path="/media_publish$")
    result = step(client, job)
    assert result.wait == client.poll_seconds and result.checkpoint["stage"] == "poll"
    assert not emu.published
    assert step(client, job).checkpoint["stage"] == "permalink"


@pytest.mark.parametrize("timeout", [False, True])
def test_lost_publish_is_reconciled_from_the_container_status(client, emu, sandbox, account, timeout):
    job = make_job(client, account)
    step(client, job)
    emu.process()
    before = dict(job.checkpoint)
    sandbox.inject("instagram", kind="lost", path="/media_publish$", timeout=timeout)
    with pytest.raises(UnknownOutcome):
        step(client, job)
    assert len(emu.published) == 1  # it did go out
    job.checkpoint = before
    settled = client.reconcile(job)
    assert settled.checkpoint["stage"] == "permalink"
    job.checkpoint = settled.checkpoint
    done = step(client, job)
    assert done.done and done.platform_post_id == emu.published[0]["id"] and len(emu.published) == 1


def test_lost_container_creation_is_redone(client, emu, sandbox, account):
    job = make_job(client, account)
    sandbox.inject("instagram", kind="lost", path="/media$")
    with pytest.raises(UnknownOutcome):
        step(client, job)
    assert client.reconcile(job).checkpoint == {}  # an orphan container never publishes by itself
    result, _ = run(client, job, emu)
    assert result.done and len(emu.published) == 1 and len(emu.containers) == 2


def test_publish_that_did_not_happen_is_safe_to_redo(client, emu, sandbox, account):
    job = make_job(client, account)
    step(client, job)
    emu.process()
    sandbox.inject("instagram", kind="timeout", path="/media_publish$")
    with pytest.raises(UnknownOutcome):
        step(client, job)
    assert client.reconcile(job).checkpoint == job.checkpoint
    assert step(client, job).checkpoint["stage"] == "permalink" and len(emu.published) == 1


# ------------------------------------------------------------------------------------ validation
def test_validation_counts_as_instagram_does(client):
    long_caption = PostContent(caption="x" * 2201)
    assert [i.code for i in client.validate(long_caption)] == ["caption_too_long"]
    tags = PostContent(caption=" ".join(f"#t{n}" for n in range(25)), hashtags=[f"h{n}" for n in range(6)])
    assert "too_many_hashtags" in [i.code for i in client.validate(tags)]
    mentions = PostContent(caption=" ".join(f"@u{n}" for n in range(21)))
    assert "too_many_mentions" in [i.code for i in client.validate(mentions)]
    carousel = PostContent(media_type="carousel", extra={"items": ["https://x.example/a.jpg"] * 11})
    assert "carousel_size" in [i.code for i in client.validate(carousel)]
    assert client.validate(PostContent(caption="fine #one @two")) == []


# ------------------------------------------------------------------------------------ strictness
@pytest.fixture
def token(account):
    return account.access_token


def test_strict_publishing_a_container_still_in_progress(sandbox_url, account, token):
    created = raw(sandbox_url, "POST", f"{account.account_id}/media", token,
                  data={"media_type": "REELS", "video_url": media_url(), "caption": "hi"})
    assert created.status_code == 200
    answer = raw(sandbox_url, "POST", f"{account.account_id}/media_publish", token,
                 data={"creation_id": created.json()["id"]})
    assert answer.status_code == 400
    error = error_of(answer)
    assert (error["code"], error["error_subcode"], error["message"]) == (9007, 2207027, "Media ID is not available")
    assert error["type"] == "OAuthException" and error["fbtrace_id"]


def test_strict_carousel_with_eleven_children(sandbox_url, account, token):
    children = []
    for n in range(11):
        child = raw(sandbox_url, "POST", f"{account.account_id}/media", token,
                    data={"image_url": f"https://media.sandbox.aurareels.test/images/{n}.jpg",
                          "is_carousel_item": "true"})
        children.append(child.json()["id"])
    answer = raw(sandbox_url, "POST", f"{account.account_id}/media", token,
                 data={"media_type": "CAROUSEL", "children": ",".join(children), "caption": "album"})
    assert answer.status_code == 400
    assert (error_of(answer)["code"], error_of(answer)["error_subcode"]) == (100, 2207028)


def test_strict_caption_over_2200_characters(sandbox_url, account, token):
    answer = raw(sandbox_url, "POST", f"{account.account_id}/media", token,
                 json={"image_url": "https://media.sandbox.aurareels.test/images/a.jpg", "caption": "é" * 2201})
    assert answer.status_code == 400 and error_of(answer)["error_subcode"] == 2207010
    tags = raw(sandbox_url, "POST", f"{account.account_id}/media", token,
               data={"image_url": "https://media.sandbox.aurareels.test/images/a.jpg",
                     "caption": " ".join(f"#t{n}" for n in range(31))})
    assert error_of(tags)["error_subcode"] == 2207010


def test_strict_comment_needs_a_message_within_2200_characters_on_existing_media(client, emu, sandbox_url, account,
                                                                                token):
    result, _ = run(client, make_job(client, account), emu)
    media = result.platform_post_id
    empty = raw(sandbox_url, "POST", f"{media}/comments", token)
    assert empty.status_code == 400 and error_of(empty)["code"] == 100 and "message" in error_of(empty)["message"]
    long = raw(sandbox_url, "POST", f"{media}/comments", token, params={"message": "é" * 2201})
    assert long.status_code == 400 and error_of(long)["code"] == 100
    unknown = raw(sandbox_url, "POST", "17920000000000001/comments", token, params={"message": "hi"})
    assert (error_of(unknown)["code"], error_of(unknown)["error_subcode"]) == (100, 33)
    made = raw(sandbox_url, "POST", f"{media}/comments", token, params={"message": "hi"})
    assert made.status_code == 200 and made.json()["id"].startswith("1789")
    listed = raw(sandbox_url, "GET", f"{media}/comments", token, params={"fields": "id,text,username,secret"})
    assert listed.status_code == 400 and "nonexisting field (secret)" in error_of(listed)["message"]
    listed = raw(sandbox_url, "GET", f"{media}/comments", token, params={"fields": "id,text"})
    assert listed.json()["data"] == [{"id": made.json()["id"], "text": "hi"}]


def test_strict_expired_and_missing_tokens(client, sandbox, sandbox_url, account):
    missing = raw(sandbox_url, "GET", f"{account.account_id}?fields=id")
    assert missing.status_code == 400 and error_of(missing)["code"] == 104
    user_token, _ = connect(client)
    sandbox.clock.advance(61 * 86400)
    expired = raw(sandbox_url, "GET", f"{account.account_id}?fields=id", user_token.access_token)
    assert expired.status_code == 400
    assert (error_of(expired)["code"], error_of(expired)["error_subcode"]) == (190, 463)
    assert error_of(expired)["message"].startswith("Error validating access token: Session has expired")


def test_strict_quota_exhausted(emu, sandbox_url, account, token):
    emu.configure(quota_total=1, image_processing_seconds=0)
    for n in range(2):
        created = raw(sandbox_url, "POST", f"{account.account_id}/media", token,
                      data={"image_url": "https://media.sandbox.aurareels.test/images/a.jpg", "caption": f"c{n}"})
        answer = raw(sandbox_url, "POST", f"{account.account_id}/media_publish", token,
                     data={"creation_id": created.json()["id"]})
    assert answer.status_code == 400
    assert (error_of(answer)["code"], error_of(answer)["error_subcode"]) == (9, 2207042)
    limit = raw(sandbox_url, "GET", f"{account.account_id}/content_publishing_limit", token)
    assert limit.json() == {"data": [{"quota_usage": 1}]}  # without fields, only the usage


def test_strict_unknown_field(sandbox_url, account, token):
    answer = raw(sandbox_url, "GET", f"{account.account_id}?fields=id,username,secret_sauce", token)
    assert answer.status_code == 400 and error_of(answer)["code"] == 100
    assert "nonexisting field (secret_sauce)" in error_of(answer)["message"]


def test_strict_another_users_token_cannot_reach_the_account(client, sandbox_url, account):
    _, [other] = connect(client, user="someone_else")
    answer = raw(sandbox_url, "POST", f"{account.account_id}/media", other.tokens.access_token,
                 data={"image_url": "https://media.sandbox.aurareels.test/images/a.jpg"})
    assert answer.status_code == 400
    assert (error_of(answer)["code"], error_of(answer)["error_subcode"]) == (100, 33)


def test_strict_standalone_video_and_unreachable_image(sandbox_url, account, token):
    video = raw(sandbox_url, "POST", f"{account.account_id}/media", token,
                data={"media_type": "VIDEO", "video_url": media_url()})
    assert error_of(video)["error_subcode"] == 2207023
    image = raw(sandbox_url, "POST", f"{account.account_id}/media", token,
                data={"image_url": "https://media.sandbox.aurareels.test/images/a.jpg?status=403"})
    assert (error_of(image)["code"], error_of(image)["error_subcode"]) == (9004, 2207052)
    png = raw(sandbox_url, "POST", f"{account.account_id}/media", token,
              data={"image_url": "https://media.sandbox.aurareels.test/images/a.png"})
    assert error_of(png)["error_subcode"] == 2207005


def test_strict_publishing_twice_and_wrong_method(emu, sandbox_url, account, token):
    created = raw(sandbox_url, "POST", f"{account.account_id}/media", token,
                  data={"image_url": "https://media.sandbox.aurareels.test/images/a.jpg"}).json()["id"]
    first = raw(sandbox_url, "POST", f"{account.account_id}/media_publish", token, data={"creation_id": created})
    second = raw(sandbox_url, "POST", f"{account.account_id}/media_publish", token, data={"creation_id": created})
    assert first.status_code == 200 and second.status_code == 400 and len(emu.published) == 1
    wrong = raw(sandbox_url, "DELETE", f"{account.account_id}/media_publish", token)
    assert error_of(wrong)["type"] == "GraphMethodException" and error_of(wrong)["error_subcode"] == 33
    unknown = raw(sandbox_url, "GET", f"{account.account_id}/stories_archive", token)
    assert error_of(unknown)["code"] == 2500


def test_strict_deprecated_metric(client, emu, sandbox_url, account, token):
    result, _ = run(client, make_job(client, account), emu)
    answer = raw(sandbox_url, "GET", f"{result.platform_post_id}/insights?metric=plays", token)
    assert answer.status_code == 400 and "plays" in error_of(answer)["message"]


def test_strict_login_endpoints(client, sandbox_url):
    bad_scope = httpx.get(f"{sandbox_url}/www.facebook.com/{GRAPH_VERSION}/dialog/oauth",
                          params={"client_id": APP_ID, "redirect_uri": "https://bridge.example/cb",
                                  "scope": "instagram_basic,publish_everything", "response_type": "code"})
    assert bad_scope.status_code == 400 and "Invalid Scopes: publish_everything" in bad_scope.text
    on_graph = httpx.get(f"{sandbox_url}/{GRAPH}/{GRAPH_VERSION}/dialog/oauth", params={"client_id": APP_ID})
    assert error_of(on_graph)["code"] == 2500  # the dialog lives on www.facebook.com only
    answer = oauth_driver.consent(client.authorization_url("s"))
    exchange = {"client_id": APP_ID, "client_secret": APP_SECRET, "code": answer["code"],
                "redirect_uri": "https://bridge.example/other"}
    mismatch = httpx.get(f"{sandbox_url}/{GRAPH}/{GRAPH_VERSION}/oauth/access_token", params=exchange)
    assert (error_of(mismatch)["code"], error_of(mismatch)["error_subcode"]) == (100, 36008)
    exchange["redirect_uri"] = client.redirect_uri
    posted = httpx.post(f"{sandbox_url}/{GRAPH}/{GRAPH_VERSION}/oauth/access_token", data=exchange)
    assert error_of(posted)["type"] == "GraphMethodException"
    ok = httpx.get(f"{sandbox_url}/{GRAPH}/{GRAPH_VERSION}/oauth/access_token", params=exchange)
    assert ok.status_code == 200 and ok.json()["token_type"] == "bearer"
    wrong_secret = httpx.get(f"{sandbox_url}/{GRAPH}/{GRAPH_VERSION}/oauth/access_token",
                             params={**exchange, "client_secret": "nope"})
    assert error_of(wrong_secret) | {"fbtrace_id": None} == {
        "message": "Error validating client secret.", "type": "OAuthException", "code": 1, "is_transient": False,
        "fbtrace_id": None}


# ------------------------------------------------------------------------------------ webhooks
def test_webhook_subscription_handshake():
    params = {"hub.mode": "subscribe", "hub.challenge": "1158201444", "hub.verify_token": "my-verify"}
    assert verify_subscription(params, "my-verify") == "1158201444"
    assert verify_subscription({**params, "hub.verify_token": "other"}, "my-verify") is None
    assert verify_subscription({**params, "hub.mode": "unsubscribe"}, "my-verify") is None
    assert verify_subscription(params, None) is None


def test_webhook_signature():
    body = b'{"object":"instagram","entry":[]}'
    good = "sha256=" + hmac.new(APP_SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert verify_signature(APP_SECRET, good, body)
    assert not verify_signature(APP_SECRET, good, body + b" ")
    assert not verify_signature(APP_SECRET, good.replace("sha256=", "sha1="), body)
    assert not verify_signature(APP_SECRET, None, body)
