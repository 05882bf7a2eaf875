"""What each platform accepts, from its client's declarations: the limits a composer shows."""
from __future__ import annotations

from bridge.config import Settings
from bridge.platforms.base import PlatformClient
from bridge.platforms.registry import client_classes
from bridge.services import quota


def describe(settings: Settings) -> dict:
    """`GET /platforms`: one entry per platform of the registry."""
    return {"success": True, "platforms": {name: _platform(settings, name, cls)
                                           for name, cls in client_classes().items()}}


def _platform(settings: Settings, name: str, cls: type[PlatformClient]) -> dict:
    need = cls.requirements
    first = cls.first_comment
    project = quota.project_limit_for(name)
    privacy = list(cls.privacy_values())
    return {
        "name": cls.display_name,
        "caption_limit": need.caption_max,
        "caption_counting": need.caption_counting,
        "caption_unit": need.caption_unit,
        "hashtag_limit": need.hashtags_max,
        "mention_limit": need.mentions_max,
        "title_limit": need.title_max,
        "media_types": list(need.media_types),
        "video_types": list(need.video_content_types),
        "video_max_bytes": need.max_video_bytes,
        "video_min_duration_sec": need.min_duration_sec,
        "video_max_duration_sec": need.max_duration_sec,
        "privacy_levels": privacy,
        "privacy_required": cls.default_privacy is None and bool(privacy),
        "default_privacy": cls.default_privacy,
        "daily_limit": quota.limit_for(settings, name),
        "project_daily_limit": project.limit if project else None,
        "first_comment": first is not None,
        "first_comment_limit": first.max_length if first else None,
        "first_comment_counting": first.counting if first else None,
        "first_comment_kind": first.kind if first else None,
        "options": sorted(cls.options),
    }
