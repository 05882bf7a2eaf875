"""Platform options and privacy are checked at the request: a bad option is a 422 naming
`<platform>.options.<name>`, and nothing is stored."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from tests.conftest import auth
from tests.factories import add_account, add_video, later

P = "/wp-json/aurareels/v1/social"
USER = 321
IMAGE = "https://media.sandbox.aurareels.test/images/{}.jpg"


def count_posts(rt):
    with rt.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(rt.tables.posts)).scalar()


@pytest.fixture
def accounts(rt):
    return {platform: add_account(rt, USER, platform) for platform in
            ("tiktok", "instagram", "facebook", "youtube", "twitter", "linkedin")}


@pytest.fixture
def video(rt):
    return add_video(rt, USER)


def publish(client, video, accounts, platforms, **extra):
    body = {"video_job_id": video, "accounts": [accounts[p] for p in platforms], "caption": "Options day",
            "privacy_level": "PUBLIC", **extra}
    if body["privacy_level"] is None:  # not chosen
        del body["privacy_level"]
    return client.post(f"{P}/publish", headers=auth(USER), json=body)


BAD_OPTIONS = [
    # (platforms, media_type, options, the errors key expected)
    (["tiktok"], "video", {"photo_cover_index": "abc"}, "tiktok.options.photo_cover_index"),
    (["tiktok"], "carousel", {"photo_cover_index": 35, "image_urls": [IMAGE.format(1)]},
     "tiktok.options.photo_cover_index"),
    (["tiktok"], "video", {"brand_content_toggle": "yes"}, "tiktok.options.brand_content_toggle"),
    (["tiktok"], "video", {"tiktok_source": "SMOKE_SIGNALS"}, "tiktok.options.tiktok_source"),
    (["tiktok"], "carousel", {"image_urls": ["ftp://media.example/a.jpg"]}, "tiktok.options.image_urls"),
    (["tiktok"], "carousel", {"image_urls": ["javascript:alert(1)"]}, "tiktok.options.image_urls"),
    (["tiktok"], "carousel", {"image_urls": [IMAGE.format(n) for n in range(36)]}, "tiktok.options.image_urls"),
    (["tiktok"], "carousel", {"image_urls": ["https://m.example/" + "a" * 2100 + ".jpg"]},
     "tiktok.options.image_urls"),
    (["instagram"], "video", {"thumb_offset": "abc"}, "instagram.options.thumb_offset"),
    (["instagram"], "video", {"thumb_offset": -5}, "instagram.options.thumb_offset"),
    (["instagram"], "video", {"collaborators": 5}, "instagram.options.collaborators"),
    (["instagram"], "video", {"collaborators": ["a", "b", "c", "d"]}, "instagram.options.collaborators"),
    (["instagram"], "video", {"share_to_feed": 1}, "instagram.options.share_to_feed"),
    (["instagram"], "video", {"cover_url": "file:///etc/passwd"}, "instagram.options.cover_url"),
    (["instagram"], "carousel", {"items": [IMAGE.format(1), {"url": IMAGE.format(2), "type": "gif"}]},
     "instagram.options.items"),
    (["instagram"], "carousel", {"items": [IMAGE.format(n) for n in range(11)]}, "instagram.options.items"),
    (["facebook"], "carousel", {"items": [1, 2]}, "facebook.options.items"),
    (["facebook"], "carousel", {"items": [{"url": IMAGE.format(1)}, {"url": IMAGE.format(2), "extra": 1}]},
     "facebook.options.items"),
    (["facebook"], "carousel", {"items": [{"url": IMAGE.format(1), "type": "video"}, IMAGE.format(2)]},
     "facebook.options.items"),
    (["facebook"], "video", {"facebook_mode": "video"}, "facebook.options.facebook_mode"),
    (["facebook"], "text", {"link": "gopher://old.example"}, "facebook.options.link"),
    (["youtube"], "video", {"made_for_kids": "false"}, "youtube.options.made_for_kids"),
    (["youtube"], "video", {"tags": "one,two"}, "youtube.options.tags"),
    (["youtube"], "video", {"category_id": "music"}, "youtube.options.category_id"),
    (["twitter"], "image", {"image_urls": [IMAGE.format(n) for n in range(5)]}, "twitter.options.image_urls"),
    (["linkedin"], "text", {"disable_reshare": "no"}, "linkedin.options.disable_reshare"),
]


@pytest.mark.parametrize("platforms, media_type, options, key", BAD_OPTIONS,
                         ids=[case[3] + ":" + str(list(case[2].values())[0])[:20] for case in BAD_OPTIONS])
def test_each_bad_option_is_a_422_naming_the_field(client, rt, accounts, video, platforms, media_type, options, key):
    before = count_posts(rt)
    response = publish(client, video, accounts, platforms, media_type=media_type, options=options)
    assert response.status_code == 422, response.get_data(as_text=True)
    answer = response.get_json()
    assert answer["success"] is False and key in answer["errors"], answer["errors"]
    assert any(options_name in message for message in answer["errors"][key] for options_name in options)
    assert count_posts(rt) == before


def test_schedule_checks_options_too(client, rt, accounts, video):
    response = client.post(f"{P}/schedule", headers=auth(USER), json={
        "video_job_id": video, "accounts": [accounts["instagram"]], "privacy_level": "PUBLIC",
        "scheduled_at": later(), "options": {"thumb_offset": "abc"}})
    assert response.status_code == 422 and "instagram.options.thumb_offset" in response.get_json()["errors"]
    assert count_posts(rt) == 0


def test_an_option_no_selected_platform_accepts_is_refused(client, rt, accounts, video):
    typo = publish(client, video, accounts, ["instagram"], options={"thumb_ofset": 1000})
    assert typo.status_code == 422 and typo.get_json()["code"] == "unknown_option"
    assert typo.get_json()["errors"]["options.thumb_ofset"] == [
        "Unknown option 'thumb_ofset' for the selected accounts: no platform has it."]
    elsewhere = publish(client, video, accounts, ["tiktok"], options={"facebook_mode": "reel"})
    assert elsewhere.status_code == 422
    assert "applies to facebook only" in elsewhere.get_json()["errors"]["options.facebook_mode"][0]
    assert count_posts(rt) == 0


def test_good_options_of_several_platforms_are_stored(client, rt, accounts, video):
    options = {"thumb_offset": 1500, "share_to_feed": False, "facebook_mode": "reel", "is_aigc": True,
               "tiktok_source": "FILE_UPLOAD", "tags": ["tour", "studio"], "made_for_kids": False}
    response = publish(client, video, accounts, ["tiktok", "instagram", "facebook", "youtube"], options=options)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert count_posts(rt) == 4


def test_tiktok_post_without_privacy_is_refused_at_the_request(client, rt, accounts, video):
    response = publish(client, video, accounts, ["tiktok", "instagram"], privacy_level=None)
    assert response.status_code == 422
    answer = response.get_json()
    assert answer["code"] == "privacy_level_required" and "tiktok.privacy_level" in answer["errors"]
    assert "instagram.privacy_level" not in answer["errors"] and count_posts(rt) == 0


def test_other_platforms_keep_their_default_privacy(client, rt, accounts, video):
    response = publish(client, video, accounts, ["instagram", "youtube"], privacy_level=None)
    assert response.status_code == 200, response.get_data(as_text=True)
    with rt.engine.connect() as conn:
        stored = conn.execute(select(rt.tables.posts.c.privacy_level)).scalars().all()
    assert stored == ["PUBLIC", "PUBLIC"]


def test_tiktok_privacy_is_stored_as_chosen(client, rt, accounts, video):
    response = publish(client, video, accounts, ["tiktok"], privacy_level="FRIENDS")
    assert response.status_code == 200
    with rt.engine.connect() as conn:
        assert conn.execute(select(rt.tables.posts.c.privacy_level)).scalar() == "FRIENDS"


def test_branded_tiktok_content_cannot_be_private(client, rt, accounts, video):
    response = publish(client, video, accounts, ["tiktok"], privacy_level="PRIVATE",
                       options={"brand_content_toggle": True})
    assert response.status_code == 422 and response.get_json()["code"] == "branded_content_private"
    assert "tiktok.privacy_level" in response.get_json()["errors"] and count_posts(rt) == 0


def test_options_object_is_bounded(client, rt, accounts, video):
    response = publish(client, video, accounts, ["tiktok"], options={f"k{n}": n for n in range(33)})
    assert response.status_code == 422 and "options" in response.get_json()["errors"]
