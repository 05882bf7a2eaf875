"""Facebook Pages contract tests: the client against the emulator over real loopback HTTP, the
emulator's strictness with raw requests, and a streamed 300 MB reel's memory."""
from __future__ import annotations

import hashlib
import hmac
import json
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from bridge.config import ConfigError, Settings
from bridge.platforms.base import AccountRef, CommentTarget, PostContent, PublishJob
from bridge.platforms.errors import (
    RateLimited,
    Reauthorize,
    Rejected,
    TokenExpired,
    Transient,
    UnknownOutcome,
)
from bridge.platforms.facebook import FacebookClient
from bridge.platforms.meta import GRAPH_VERSION
from tests.platforms import oauth_driver
from tests.platforms.conftest import CREDENTIALS, media_url
from tests.platforms.memory import publish_in_child

APP_ID, APP_SECRET = CREDENTIALS["FACEBOOK_APP_ID"], CREDENTIALS["FACEBOOK_APP_SECRET"]
GRAPH, VIDEO_HOST, RUPLOAD = "graph.facebook.com", "graph-video.facebook.com", "rupload.facebook.com"
PAGE_PERMISSIONS = ["pages_show_list", "pages_read_engagement", "pages_manage_posts"]
MB = 1_000_000


# ------------------------------------------------------------------------------------ helpers
@pytest.fixture
def emu(sandbox):
    return sandbox.emulator("facebook")


@pytest.fixture
def client(platform_settings, emu):
    return FacebookClient(platform_settings)


def connect(client, user: str = "creator1"):
    answer = oauth_driver.consent(client.authorization_url("state-fb"), user=user)
    tokens = client.exchange_code(answer["code"])
    return tokens, client.fetch_accounts(tokens)


def as_account(profile) -> AccountRef:
    return AccountRef(id=2, account_id=profile.account_id, access_token=profile.tokens.access_token,
                      refresh_token=profile.tokens.refresh_token, metadata=profile.metadata)


@pytest.fixture
def account(client) -> AccountRef:
    _, [profile] = connect(client)
    return as_account(profile)


def make_job(client, account, **content) -> PublishJob:
    content.setdefault("caption", "Behind the scenes #studio")
    content.setdefault("media_type", "video")
    content.setdefault("video_url", media_url(3 * MB, 20))
    post = PostContent(**content)
    job = PublishJob(post_id=11, account=account, content=post, caption=client.compose_caption(post))
    job.sent = []
    job.progress = lambda done, total: job.sent.append((done, total))
    return job


def video_job(client, account, mode, **content):
    extra = {**content.pop("extra", {}), "facebook_mode": mode}
    return make_job(client, account, extra=extra, **content)


def step(client, job):
    result = client.publish_step(job)
    job.checkpoint = json.loads(json.dumps(result.checkpoint))
    return result


def run(client, job, emu, limit=200):
    stages = []
    for _ in range(limit):
        stages.append(job.checkpoint.get("stage") or "start")
        result = step(client, job)
        if result.done:
            return result, stages
        if result.wait is not None:
            emu.process()
    raise AssertionError(f"no completion after {limit} steps: {stages[-5:]}")


def proof(token: str, secret: str = APP_SECRET) -> str:
    return hmac.new(secret.encode(), token.encode(), hashlib.sha256).hexdigest()


def raw(sandbox_url, method, path, token=None, host=GRAPH, with_proof=True, **kw):
    """A Graph call as the app's server makes it: the token in a header, its appsecret_proof in
    the query (`with_proof=False` leaves the proof out)."""
    headers = kw.pop("headers", {})
    params = dict(kw.pop("params", {}))
    if token:
        headers.setdefault("Authorization", f"Bearer {token}")
        if with_proof:
            params["appsecret_proof"] = proof(token)
    url = httpx.URL(f"{sandbox_url}/{host}/{GRAPH_VERSION}/{path}").copy_merge_params(params)
    return httpx.request(method, url, headers=headers, timeout=30, **kw)


def rupload(sandbox_url, video_id, headers, content):
    return httpx.post(f"{sandbox_url}/{RUPLOAD}/video-upload/{GRAPH_VERSION}/{video_id}", headers=headers,
                      content=content, timeout=30)


def error_of(response) -> dict:
    return response.json()["error"]


# ------------------------------------------------------------------------------------ connect
def test_connect_gives_every_page_with_its_page_token(client, emu):
    url = client.authorization_url("state-1")
    query = parse_qs(urlsplit(url).query)
    assert query["client_id"] == [APP_ID]
    # publish_video is the Live Video permission (App Review): not asked, and not needed for reels
    assert query["scope"] == ["pages_show_list,pages_read_engagement,pages_manage_posts,pages_manage_engagement,"
                              "read_insights,business_management"]
    user = emu.world.ensure_user("bakery")
    second = emu.world.add_page(user["id"], name="Bakery Deals")
    emu.world.add_page(user["id"], name="Analytics only", tasks=["ANALYZE"])  # cannot post: skipped
    tokens, profiles = connect(client, user="bakery")
    assert tokens.refresh_token is None  # Meta has no refresh grant: Page tokens do not expire
    assert [p.account_name for p in profiles] == ["Bakery's Page", "Bakery Deals"]
    for profile in profiles:
        record = emu.world.tokens[profile.tokens.access_token]
        assert record.kind == "page" and record.extra["page"] == profile.account_id
        assert profile.tokens.expires_at is None and profile.tokens.refresh_token is None
        assert profile.metadata["user_id"] == user["id"] and "CREATE_CONTENT" in profile.metadata["tasks"]
        assert profile.picture_url.endswith(f"/{profile.account_id}.jpg")
    assert profiles[1].account_id == second["id"]


def test_live_video_permission_is_neither_asked_nor_needed_for_reels(client, emu, sandbox_url):
    # an app without Live Video review cannot ask for publish_video: the dialog refuses it
    asked = httpx.get(f"{sandbox_url}/www.facebook.com/{GRAPH_VERSION}/dialog/oauth", params={
        "client_id": APP_ID, "redirect_uri": "https://bridge.example/cb", "response_type": "code",
        "scope": "pages_show_list,publish_video"})
    assert asked.status_code == 400 and "publish_video" in asked.text
    _, [profile] = connect(client)
    record = emu.world.tokens[profile.tokens.access_token]
    assert "publish_video" not in emu.world.scopes(record)
    # the three Page permissions are all a reel needs
    emu.world.grants[(record.user, record.client_id)] = set(PAGE_PERMISSIONS)
    result, _ = run(client, video_job(client, as_account(profile), "reel"), emu)
    assert result.done and emu.published[0]["kind"] == "reel"


def test_login_for_business_authorizes_with_config_id(platform_env, emu):
    emu.configure(login_for_business_apps=[APP_ID], login_configurations={"cfg-pages-7": PAGE_PERMISSIONS})
    client = FacebookClient(Settings.from_env({**platform_env, "FACEBOOK_CONFIG_ID": "cfg-pages-7"}))
    query = parse_qs(urlsplit(client.authorization_url("state-b")).query)
    assert query["config_id"] == ["cfg-pages-7"] and "scope" not in query
    tokens, [profile] = connect(client)
    assert sorted(tokens.scope.split(",")) == sorted(PAGE_PERMISSIONS)  # what the configuration grants
    assert step(client, make_job(client, as_account(profile), media_type="text", video_url=None)).done
    # the same app asked with scope (no configuration) is refused by Meta's dialog
    plain = FacebookClient(Settings.from_env(platform_env))
    refused = httpx.get(plain.authorization_url("state-c"))
    assert refused.status_code == 400 and "config_id" in refused.text


def test_every_graph_call_carries_the_appsecret_proof(client, emu, sandbox, sandbox_url, account):
    sandbox.log.clear()
    run(client, video_job(client, account, "reel"), emu)
    step(client, make_job(client, account, media_type="text", video_url=None))
    graph = [e for e in sandbox.requests("facebook") if "/video-upload/" not in e["path"]]
    assert graph and all("appsecret_proof" in e["query"] for e in graph), [e["path"] for e in graph]
    bare = raw(sandbox_url, "POST", f"{account.account_id}/feed", account.access_token, with_proof=False,
               data={"message": "no proof"})
    assert bare.status_code == 400 and "appsecret_proof" in error_of(bare)["message"]
    forged = raw(sandbox_url, "POST", f"{account.account_id}/feed", account.access_token, with_proof=False,
                 params={"appsecret_proof": proof(account.access_token, "not-the-secret")}, data={"message": "x"})
    assert "Invalid appsecret_proof" in error_of(forged)["message"] and len(emu.published) == 2


def test_graph_version_is_a_setting(platform_env, emu, sandbox):
    client = FacebookClient(Settings.from_env({**platform_env, "AURAREELS_GRAPH_VERSION": "v25.0"}))
    assert "/www.facebook.com/v25.0/dialog/oauth" in client.authorization_url("s")
    _, [profile] = connect(client)
    sandbox.log.clear()
    assert step(client, make_job(client, as_account(profile), media_type="text", video_url=None)).done
    assert all(e["path"].startswith("/v25.0/") for e in sandbox.requests("facebook"))
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({**platform_env, "AURAREELS_GRAPH_VERSION": "25"})
    assert "AURAREELS_GRAPH_VERSION" in str(caught.value)


def test_connect_without_a_postable_page_says_so(client, emu):
    user = emu.world.ensure_user("viewer")
    for page in emu.world.pages.values():
        if page["owner"] == user["id"]:
            page["tasks"] = ["ANALYZE"]
    with pytest.raises(Rejected) as caught:
        connect(client, user="viewer")
    assert caught.value.code == "no_pages"


def test_revoke_with_the_app_token_ends_the_page_tokens(client, account):
    assert client.revoke(account) is True
    with pytest.raises(Reauthorize) as caught:
        step(client, make_job(client, account, media_type="text", video_url=None))
    assert caught.value.code == "login_revoked"


# ------------------------------------------------------------------------------------ posts and photos
def test_text_post_with_link(client, emu, account):
    job = make_job(client, account, media_type="text", video_url=None, extra={"link": "https://example.com/a"})
    result = step(client, job)
    assert result.done and result.platform_post_id.startswith(account.account_id + "_")
    assert result.platform_post_url == f"https://www.facebook.com/{result.platform_post_id}"
    [record] = emu.published
    assert record["caption"] == "Behind the scenes #studio" and record["kind"] == "status"
    assert emu.posts[result.platform_post_id]["link"] == "https://example.com/a"


def test_photo_post(client, emu, account):
    job = make_job(client, account, media_type="image", video_url=None,
                   extra={"image_url": "https://media.sandbox.aurareels.test/images/shot.png"})
    result = step(client, job)
    assert result.done and emu.published[0]["kind"] == "photo"
    [photo] = emu.photos.values()
    assert photo["post_id"] == result.platform_post_id and photo["caption"] == job.caption


def test_multi_photo_post(client, emu, account):
    items = [f"https://media.sandbox.aurareels.test/images/{n}.jpg" for n in range(3)]
    job = make_job(client, account, media_type="carousel", video_url=None, extra={"items": items})
    result, stages = run(client, job, emu)
    assert stages == ["start", "photo_items", "photo_items", "feed_attached"]
    assert [r["kind"] for r in emu.published] == ["album"]
    assert all(p["attached"] and not p["published"] for p in emu.photos.values())


# ------------------------------------------------------------------------------------ first comment
@pytest.mark.parametrize("kind", ["text", "reel"])
def test_first_comment_goes_under_the_post_or_the_reel_as_the_page(kind, client, emu, account):
    job = (make_job(client, account, media_type="text", video_url=None) if kind == "text"
           else video_job(client, account, "reel"))
    result, _ = run(client, job, emu)
    target = CommentTarget(result.platform_post_id, result.platform_post_url)
    comment_id = client.post_comment(account, target, "Full recipe in the first comment 👇")
    [made] = emu.snapshot()["comments"]
    assert made == {"id": comment_id, "object": result.platform_post_id, "author": account.account_id,
                    "message": "Full recipe in the first comment 👇"}
    assert client.find_comment(account, target, "Full recipe in the first comment 👇", None) == comment_id
    assert client.find_comment(account, target, "something else", None) is None


def test_first_comment_needs_pages_manage_engagement(client, emu, account):
    result, _ = run(client, make_job(client, account, media_type="text", video_url=None), emu)
    record = emu.world.tokens[account.access_token]
    emu.world.revoke(record.user, record.client_id, "pages_manage_engagement")
    with pytest.raises(Reauthorize) as refused:
        client.post_comment(account, CommentTarget(result.platform_post_id), "First!")
    assert refused.value.code == "permission_missing" and refused.value.platform_code == 200
    assert emu.snapshot()["comments"] == []


def test_strict_comments_as_the_page_only_on_its_live_objects(client, emu, sandbox_url, account):
    result, _ = run(client, make_job(client, account, media_type="text", video_url=None), emu)
    post = result.platform_post_id
    _, [other] = connect(client, user="someone_else")
    foreign = raw(sandbox_url, "POST", f"{post}/comments", other.tokens.access_token, data={"message": "hi"})
    assert error_of(foreign)["code"] == 200 and "pages_manage_engagement" in error_of(foreign)["message"]
    user_token, _ = connect(client)
    as_user = raw(sandbox_url, "POST", f"{post}/comments", user_token.access_token, data={"message": "hi"})
    assert error_of(as_user)["code"] == 210
    empty = raw(sandbox_url, "POST", f"{post}/comments", account.access_token, data={})
    assert error_of(empty)["message"] == "(#100) Missing message or attachment"
    long = raw(sandbox_url, "POST", f"{post}/comments", account.access_token, data={"message": "x" * 8001})
    assert error_of(long)["code"] == 100
    assert raw(sandbox_url, "DELETE", post, account.access_token).json() == {"success": True}
    gone = raw(sandbox_url, "POST", f"{post}/comments", account.access_token, data={"message": "hi"})
    assert (error_of(gone)["code"], error_of(gone)["error_subcode"]) == (100, 33)
    assert emu.snapshot()["comments"] == []


# ------------------------------------------------------------------------------------ videos
def test_reel_start_upload_finish_and_status(client, emu, account):
    size = 3 * MB
    job = video_job(client, account, "reel", video_url=media_url(size, 20))
    result, stages = run(client, job, emu)
    assert stages == ["start", "reel_upload", "reel_finish", "video_status", "video_status"]
    video = emu.videos[result.platform_post_id]
    assert video["kind"] == "reel" and video["received"] == video["size"] == size
    assert result.platform_post_url == f"https://www.facebook.com/reel/{video['id']}/"
    assert job.sent[-1] == (size, size) and [s for s, _ in job.sent] == sorted(s for s, _ in job.sent)
    [record] = emu.published
    assert record["kind"] == "reel" and record["caption"] == job.caption


def test_reel_processing_follows_the_clock(client, emu, sandbox, account):
    job = video_job(client, account, "reel")
    for _ in range(3):
        step(client, job)
    assert step(client, job).wait
    sandbox.clock.advance(emu.config["video_processing_seconds"])
    assert step(client, job).done


def test_page_video_from_url(client, emu, account):
    job = video_job(client, account, "file_url", video_url=media_url(8 * MB, 400))
    result, stages = run(client, job, emu)
    assert stages == ["start", "video_status", "video_status"]
    assert emu.videos[result.platform_post_id]["size"] == 8 * MB and len(emu.published) == 1


def test_video_url_facebook_cannot_fetch(client, account):
    with pytest.raises(Rejected) as caught:
        step(client, video_job(client, account, "file_url", video_url=media_url(status=404)))
    assert caught.value.code == "media_fetch_failed" and "public" in caught.value.message


def test_video_processing_error(client, emu, account):
    job = video_job(client, account, "reel")
    for _ in range(3):
        step(client, job)
    emu.process(outcome="error", message="The video has no video stream.")
    with pytest.raises(Rejected) as caught:
        step(client, job)
    assert caught.value.code == "processing_failed" and "no video stream" in caught.value.message


def test_reel_too_long_is_refused_before_upload(client, emu, account):
    with pytest.raises(Rejected) as caught:
        step(client, video_job(client, account, "reel", video_url=media_url(3 * MB, 120)))
    assert caught.value.code == "reel_duration" and not emu.videos


def test_reels_daily_limit_waits_until_the_window_frees(client, emu, sandbox, account):
    emu.configure(reels_per_day=2)
    client.reels_per_day = 2
    for n in range(2):
        run(client, video_job(client, account, "reel", caption=f"reel {n}"), emu)
    sandbox.clock.advance(7200)
    job = video_job(client, account, "reel", caption="reel 3")
    step(client, job)
    step(client, job)
    with pytest.raises(RateLimited) as caught:
        step(client, job)
    assert caught.value.code == "publish_limit_reached"
    assert 86400 - 7200 <= caught.value.retry_after <= 86400 - 7200 + 120
    assert len(emu.published) == 2


def test_metrics_of_posts_and_videos(client, emu, account):
    post = step(client, make_job(client, account, media_type="text", video_url=None))
    emu.set_metrics(post.platform_post_id, views=900, likes=40, comments=7, shares=3)
    metrics = client.fetch_metrics(account, post.platform_post_id)
    assert (metrics.views, metrics.likes, metrics.comments, metrics.shares) == (900, 40, 7, 3)
    reel, _ = run(client, video_job(client, account, "reel"), emu)
    emu.set_metrics(reel.platform_post_id, views=5000, likes=300, comments=25, shares=12)
    metrics = client.fetch_metrics(account, reel.platform_post_id)
    assert (metrics.views, metrics.likes, metrics.comments, metrics.shares) == (5000, 300, 25, 12)


def test_metrics_read_reach_and_grow_with_the_sandbox_clock(client, emu, sandbox, account):
    post = step(client, make_job(client, account, media_type="text", video_url=None))
    emu.set_metrics(post.platform_post_id, views=900, reach=640, likes=40)
    first = client.fetch_metrics(account, post.platform_post_id)
    assert (first.views, first.reach, first.saves) == (900, 640, None)  # reach: post_total_media_view_unique
    sandbox.clock.advance(86400)
    later = client.fetch_metrics(account, post.platform_post_id)
    assert later.views > 900 and later.reach > 640 and later.likes > 40


def test_validation(client):
    from bridge.platforms.base import MediaInfo

    reel = PostContent(media_type="video", extra={})
    assert [i.code for i in client.validate(reel, MediaInfo(duration_sec=120))] == ["reel_duration"]
    long_video = PostContent(media_type="video", extra={"facebook_mode": "file_url"})
    assert client.validate(long_video, MediaInfo(duration_sec=1200)) == []
    for retired in ("video", "story"):  # the chunked Page-video mode is gone
        odd = PostContent(media_type="video", extra={"facebook_mode": retired})
        assert [(i.field, i.code) for i in client.validate(odd)] == [("options.facebook_mode", "invalid_option")]
    assert [i.code for i in client.validate(PostContent(media_type="text", caption="x" * 63207))] == \
        ["caption_too_long"]


# ------------------------------------------------------------------------------------ errors and faults
def test_expired_token_and_invalidated_session(client, emu, sandbox, account):
    sandbox.inject("facebook", kind="error", error="token_expired", path="/feed$")
    with pytest.raises(TokenExpired):
        step(client, make_job(client, account, media_type="text", video_url=None))
    emu.world.invalidated[account.metadata["user_id"]] = 460
    with pytest.raises(Reauthorize) as caught:
        step(client, make_job(client, account, media_type="text", video_url=None))
    assert caught.value.platform_code == "190/460"


def test_throttling_uses_the_business_use_case_estimate(client, sandbox, account):
    sandbox.inject("facebook", kind="rate_limit", retry_after=600, path="/feed$")
    with pytest.raises(RateLimited) as caught:
        step(client, make_job(client, account, media_type="text", video_url=None))
    assert caught.value.retry_after == 600 and caught.value.platform_code == 80001


@pytest.mark.parametrize("name, code", [("app_rate_limit", 4), ("user_rate_limit", 17), ("page_rate_limit", 32)])
def test_platform_rate_limits_wait(client, sandbox, account, name, code):
    sandbox.inject("facebook", kind="error", error=name, path="/feed$")
    with pytest.raises(RateLimited) as caught:
        step(client, make_job(client, account, media_type="text", video_url=None))
    assert caught.value.platform_code == code and caught.value.retry_after == 300


def test_unknown_graph_error_is_transient_on_reads_and_unknown_after_a_post(client, sandbox, account):
    sandbox.inject("facebook", kind="error", error="unknown_error", path="/(feed|published_posts)$", times=2)
    with pytest.raises(Transient):
        client.reconcile(make_job(client, account, media_type="text", video_url=None))
    with pytest.raises(UnknownOutcome):
        step(client, make_job(client, account, media_type="text", video_url=None))


def test_duplicate_post_is_rejected(client, emu, account):
    step(client, make_job(client, account, media_type="text", video_url=None))
    with pytest.raises(Rejected) as caught:
        step(client, make_job(client, account, media_type="text", video_url=None))
    assert caught.value.code == "duplicate_post" and len(emu.published) == 1


def test_server_error_on_a_read_is_transient(client, sandbox, account):
    job = video_job(client, account, "file_url")
    step(client, job)
    sandbox.inject("facebook", kind="status", status=500, method="GET")
    with pytest.raises(Transient):
        step(client, job)


def test_lost_post_is_found_in_the_feed(client, emu, sandbox, account):
    job = make_job(client, account, media_type="text", video_url=None)
    sandbox.inject("facebook", kind="lost", path="/feed$")
    with pytest.raises(UnknownOutcome):
        step(client, job)
    settled = client.reconcile(job)
    assert settled.checkpoint["stage"] == "done"
    job.checkpoint = settled.checkpoint
    done = step(client, job)
    assert done.done and done.platform_post_id == emu.published[0]["id"] and len(emu.published) == 1


def test_post_that_did_not_happen_is_redone(client, emu, sandbox, account):
    job = make_job(client, account, media_type="text", video_url=None)
    sandbox.inject("facebook", kind="timeout", path="/feed$")
    with pytest.raises(UnknownOutcome):
        step(client, job)
    assert client.reconcile(job).checkpoint == {}
    assert step(client, job).done and len(emu.published) == 1


def test_lost_reel_finish_is_settled_from_the_video_status(client, emu, sandbox, account):
    job = video_job(client, account, "reel")
    step(client, job)
    step(client, job)
    sandbox.inject("facebook", kind="lost", path="/video_reels$", method="POST")
    with pytest.raises(UnknownOutcome):
        step(client, job)
    settled = client.reconcile(job)
    assert settled.checkpoint["stage"] == "video_status"
    job.checkpoint = settled.checkpoint
    result, _ = run(client, job, emu)
    assert result.done and len(emu.published) == 1


def test_lost_file_url_video_is_found_among_the_page_videos(client, emu, sandbox, account):
    job = video_job(client, account, "file_url")
    sandbox.inject("facebook", kind="lost", path="/videos$", method="POST")
    with pytest.raises(UnknownOutcome):
        step(client, job)
    settled = client.reconcile(job)
    assert settled.checkpoint["stage"] == "video_status"
    job.checkpoint = settled.checkpoint
    assert run(client, job, emu)[0].done and len(emu.videos) == 1


def test_reel_upload_resumes_from_bytes_transfered(client, emu, sandbox_url, account):
    size = 4 * MB
    job = video_job(client, account, "reel", video_url=media_url(size, 20))
    step(client, job)
    video_id = job.checkpoint["video_id"]
    # An earlier attempt delivered the first 1.5 MB before the connection broke.
    first = b"\0" * 1_500_000
    answer = rupload(sandbox_url, video_id, {"Authorization": f"OAuth {account.access_token}", "offset": "0",
                                             "file_size": str(size)}, first).json()
    assert answer == {"success": True}
    step(client, job)
    assert job.sent[0][0] > 1_500_000 and job.sent[-1] == (size, size)
    assert emu.videos[video_id]["received"] == size


def test_reel_resume_after_a_complete_upload_sends_nothing_again(client, emu, sandbox_url, account):
    size = 2 * MB
    job = video_job(client, account, "reel", video_url=media_url(size, 20))
    step(client, job)
    video_id = job.checkpoint["video_id"]
    # the whole file arrived by an earlier attempt whose answer never came back
    rupload(sandbox_url, video_id, {"Authorization": f"OAuth {account.access_token}", "offset": "0",
                                    "file_size": str(size)}, b"\0" * size)
    status = raw(sandbox_url, "GET", video_id, account.access_token, params={"fields": "status"}).json()["status"]
    assert status["uploading_phase"] == {"status": "complete"}  # no byte count once complete
    assert step(client, job).checkpoint["stage"] == "video_status"
    assert job.sent == [] and emu.videos[video_id]["received"] == size


def test_strict_chunked_page_video_protocol_and_its_host_are_gone(sandbox_url, account):
    token = account.access_token
    start = raw(sandbox_url, "POST", f"{account.account_id}/videos", token,
                data={"upload_phase": "start", "file_size": "2500"})
    assert error_of(start)["code"] == 100 and "deprecated" in error_of(start)["message"]
    old_host = raw(sandbox_url, "POST", f"{account.account_id}/videos", token, host=VIDEO_HOST,
                   data={"file_url": media_url()})
    assert old_host.status_code == 404


def test_lost_reel_upload_answer_goes_on_to_finish(client, emu, sandbox, account):
    job = video_job(client, account, "reel")
    step(client, job)
    before = dict(job.checkpoint)
    sandbox.inject("facebook", kind="lost", path="^/video-upload/")
    with pytest.raises(Transient):
        step(client, job)
    job.checkpoint = before
    assert step(client, job).checkpoint["stage"] == "video_status"  # bytes were there: straight to finish
    assert run(client, job, emu)[0].done


# ------------------------------------------------------------------------------------ strictness
def test_strict_wrong_page_token_for_another_page(client, sandbox_url, account):
    _, [other] = connect(client, user="rival")
    answer = raw(sandbox_url, "POST", f"{account.account_id}/feed", other.tokens.access_token,
                 data={"message": "hello"})
    assert answer.status_code == 400 and error_of(answer)["code"] == 200
    assert "pages_manage_posts" in error_of(answer)["message"]


def test_strict_user_token_cannot_publish_and_bad_token(client, sandbox_url, account):
    tokens, _ = connect(client, user="creator1")
    answer = raw(sandbox_url, "POST", f"{account.account_id}/feed", tokens.access_token, data={"message": "x"})
    assert error_of(answer)["code"] == 210
    bogus = raw(sandbox_url, "POST", f"{account.account_id}/feed", "EAAPnot-a-token", data={"message": "x"})
    assert error_of(bogus)["code"] == 190 and error_of(bogus)["type"] == "OAuthException"


def test_strict_reels_upload_with_wrong_offset(sandbox_url, account):
    token = account.access_token
    start = raw(sandbox_url, "POST", f"{account.account_id}/video_reels", token, data={"upload_phase": "start"}).json()
    assert start["upload_url"].startswith(f"https://rupload.facebook.com/video-upload/{GRAPH_VERSION}/")
    headers = {"Authorization": f"OAuth {token}", "offset": "500", "file_size": "2000"}
    answer = rupload(sandbox_url, start["video_id"], headers, b"x" * 1500)
    assert answer.status_code == 400
    assert answer.json()["debug_info"]["type"] == "OffsetInvalidError"
    user_bytes = rupload(sandbox_url, start["video_id"], {**headers, "Authorization": "OAuth EAAPunknown",
                                                          "offset": "0"}, b"x")
    assert user_bytes.status_code == 401 and "debug_info" in user_bytes.json()


def test_strict_finish_before_transfer_complete(emu, sandbox_url, account):
    token = account.access_token
    reel = raw(sandbox_url, "POST", f"{account.account_id}/video_reels", token, data={"upload_phase": "start"}).json()
    early = raw(sandbox_url, "POST", f"{account.account_id}/video_reels", token,
                data={"upload_phase": "finish", "video_id": reel["video_id"], "video_state": "PUBLISHED"})
    assert (error_of(early)["code"], error_of(early)["error_subcode"]) == (6001, 1363037)
    assert not emu.published


def test_strict_unknown_field_and_unknown_edge(sandbox_url, account):
    answer = raw(sandbox_url, "GET", f"{account.account_id}?fields=id,name,favourite_color", account.access_token)
    assert answer.status_code == 400 and error_of(answer)["code"] == 100
    assert "nonexisting field (favourite_color) on node type (Page)" in error_of(answer)["message"]
    edge = raw(sandbox_url, "GET", f"{account.account_id}/stories_of_old", account.access_token)
    assert error_of(edge)["code"] == 2500


def test_strict_video_parameters(sandbox_url, account):
    token = account.access_token
    reel = raw(sandbox_url, "POST", f"{account.account_id}/video_reels", token, data={"upload_phase": "start"}).json()
    state = raw(sandbox_url, "POST", f"{account.account_id}/video_reels", token,
                data={"upload_phase": "finish", "video_id": reel["video_id"], "video_state": "LIVE"})
    assert error_of(state)["code"] == 100 and "video_state" in error_of(state)["message"]
    complete = raw(sandbox_url, "POST", f"{account.account_id}/video_reels", token,
                   data={"upload_phase": "complete", "video_id": reel["video_id"]})
    assert error_of(complete)["code"] == 100
    empty = raw(sandbox_url, "POST", f"{account.account_id}/feed", token, data={})
    assert error_of(empty)["message"] == "(#100) Missing message or attachment"


def test_strict_missing_permission(client, emu, sandbox_url, account):
    record = emu.world.tokens[account.access_token]
    emu.world.revoke(record.user, record.client_id, "pages_manage_posts")
    answer = raw(sandbox_url, "POST", f"{account.account_id}/feed", account.access_token, data={"message": "x"})
    assert error_of(answer)["code"] == 200
    with pytest.raises(Reauthorize) as caught:
        step(client, make_job(client, account, media_type="text", video_url=None))
    assert caught.value.code == "permission_missing"


# ------------------------------------------------------------------------------------ streamed uploads
@pytest.mark.parametrize("mode", ["reel"])
def test_streamed_300_mb_upload_keeps_memory_flat(mode, emu, platform_env, control_url, account):
    size = 300 * 1024 * 1024
    report = publish_in_child(
        "facebook", platform_env,
        account={"id": 2, "account_id": account.account_id, "access_token": account.access_token,
                 "metadata": account.metadata},
        content={"caption": f"Big {mode}", "media_type": "video", "video_url": media_url(size, 60, name="big.mp4"),
                 "extra": {"facebook_mode": mode}},
        control_url=control_url)
    print(f"facebook {mode}: 300 MiB streamed, RSS growth {report['growth_mib']:.1f} MiB in {report['steps']} steps")
    assert report["done"] and report["bytes_reported"] == size
    assert report["growth_mib"] < 64
    video = emu.videos[report["platform_post_id"]]
    assert video["received"] == video["size"] == size and video["kind"] == mode
