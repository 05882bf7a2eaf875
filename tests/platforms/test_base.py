"""The base class owns the steps and the declarations; every platform list derives from the registry."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from bridge.config import PLATFORMS, Settings
from bridge.platforms.base import AccountRef, CredentialVars, PlatformClient, PostContent, PublishJob, Requirements
from bridge.platforms.errors import Rejected
from bridge.platforms.registry import REGISTRY, client_classes, get_client, option_names, privacy_values
from tests.platforms.conftest import CREDENTIALS

ROOT = Path(__file__).resolve().parents[2]


def job(checkpoint, **content) -> PublishJob:
    return PublishJob(post_id=1, account=AccountRef(id=1, account_id="acct", access_token="token-x"),
                      content=PostContent(**content), caption="", checkpoint=checkpoint)


@pytest.mark.parametrize("platform", PLATFORMS)
@pytest.mark.parametrize("stage", ["no_such_stage", "__class__", "../init", 7, ["init"]])
def test_an_unknown_stage_is_bad_checkpoint_on_every_platform(platform_settings, platform, stage):
    client = get_client(platform_settings, platform)
    with pytest.raises(Rejected) as caught:
        client.publish_step(job({"stage": stage}))
    assert caught.value.code == "bad_checkpoint" and caught.value.platform == platform


@pytest.mark.parametrize("platform", PLATFORMS)
def test_every_declared_stage_has_its_step(platform):
    cls = client_classes()[platform]
    for stage in (cls.reading_stages | cls.live_stages | {cls.first_stage}) - {None}:
        assert callable(getattr(cls, f"step_{stage}")), stage


def test_a_client_that_forgets_a_declaration_fails_when_defined():
    with pytest.raises(TypeError) as caught:
        class Forgetful(PlatformClient):  # noqa: F841 - defining it is the test
            name = "forgetful"
            display_name = "Forgetful"
            authorize_url = token_url = "https://forgetful.example/oauth"
            credential_vars = CredentialVars("FORGETFUL_ID", "FORGETFUL_SECRET")
            requirements = Requirements(caption_max=10)
            first_stage = "post"

            def step_post(self, job, checkpoint):
                raise AssertionError
    assert "daily_limit" in str(caught.value)
    with pytest.raises(TypeError) as caught:
        class Stageless(PlatformClient):  # noqa: F841
            name = "stageless"
            display_name = "Stageless"
            authorize_url = token_url = "https://stageless.example/oauth"
            credential_vars = CredentialVars("STAGELESS_ID", "STAGELESS_SECRET")
            requirements = Requirements(caption_max=10)
            daily_limit = 5
            first_stage = "post"
    assert "without a step method: post" in str(caught.value)


def test_a_row_with_a_bad_option_fails_its_first_step_cleanly(platform_settings):
    # rows the request never checked (older rows, other writers) must not raise inside a worker
    client = get_client(platform_settings, "instagram")
    with pytest.raises(Rejected) as caught:
        client.publish_step(job({}, media_type="video", video_url="https://m.example/v.mp4",
                                extra={"thumb_offset": "abc"}))
    assert caught.value.code == "invalid_option" and "thumb_offset" in caught.value.message


# ------------------------------------------------------------------------------ one list of platforms
def test_settings_read_each_clients_declared_credentials(platform_env):
    settings = Settings.from_env({**platform_env, "FACEBOOK_CONFIG_ID": "cfg-1"})
    assert tuple(settings.credentials) == PLATFORMS == tuple(REGISTRY)
    for platform, cls in client_classes().items():
        names = cls.credential_vars
        assert settings.credentials[platform].client_id == CREDENTIALS[names.client_id]
        assert settings.credentials[platform].client_secret == CREDENTIALS[names.client_secret]
    assert settings.credentials["facebook"].config_id == "cfg-1"
    assert settings.credentials["instagram"].config_id is None


def test_privacy_values_and_options_come_from_the_clients():
    from bridge.schemas.posts import PublishSchema
    from bridge.services.posts import PLATFORM_PRIVACY

    expected = []
    for cls in client_classes().values():
        expected += [v for v in cls.privacy_values() if v not in expected]
    assert PLATFORM_PRIVACY == privacy_values() == tuple(expected)
    assert set(PublishSchema().fields["privacy_level"].validate.choices) == set(expected)
    assert {"CONNECTIONS", "UNLISTED", "SELF_ONLY", "PUBLIC"} <= set(expected)
    assert option_names()["image_urls"] == ("tiktok", "twitter")


def test_daily_limits_come_from_the_clients():
    from bridge.config import Settings
    from bridge.services.quota import limit_for
    from tests.conftest import base_env

    defaults = Settings.from_env(base_env())
    for platform, cls in client_classes().items():
        assert limit_for(defaults, platform) == cls.daily_limit
    assert limit_for(Settings.from_env(base_env(AURAREELS_QUOTA_TWITTER="7")), "twitter") == 7


def latest_sql_enum(folder: Path) -> list[str]:
    """The platform ENUM of the last MySQL migration that spells it out."""
    found = None
    for path in sorted(folder.glob("*.sql")):
        for match in re.finditer(r"`platform`\s+ENUM\(([^)]*)\)", path.read_text()):
            found = match.group(1)
    return re.findall(r"'([a-z_]+)'", found or "")


def test_sql_enum_and_wordpress_list_name_exactly_the_registry():
    # data definitions stay literal; adding a platform appends to both (an additive migration)
    assert latest_sql_enum(ROOT / "sql" / "mysql") == list(PLATFORMS)
    php = (ROOT / "wordpress" / "aurareels-social-bridge.php").read_text()
    listed = re.search(r"\$platforms\s*=\s*array\(([^)]*)\)", php).group(1)
    assert re.findall(r"'([a-z_]+)'", listed) == list(PLATFORMS)
