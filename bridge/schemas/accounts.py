from __future__ import annotations

from marshmallow import Schema, fields, validate

from bridge.config import PLATFORMS


class AccountQuerySchema(Schema):
    platform = fields.String(validate=validate.OneOf(PLATFORMS))


class AccountSchema(Schema):
    id = fields.Integer(required=True)
    platform = fields.String(required=True)
    account_name = fields.String(required=True)
    account_username = fields.String(allow_none=True)
    profile_picture_url = fields.String(allow_none=True)
    is_active = fields.Boolean(required=True)
    needs_reconnect = fields.Boolean(required=True)
    reconnect_reason = fields.String(allow_none=True, required=True, metadata={
        "description": "Why the account must be connected again; null when it need not"})
    token_expires_at = fields.String(allow_none=True, metadata={"example": "2024-12-31 23:59:59"})
    created_at = fields.String(allow_none=True, metadata={"example": "2024-01-01 00:00:00"})


class AccountListSchema(Schema):
    success = fields.Boolean(required=True)
    accounts = fields.List(fields.Nested(AccountSchema), required=True)


class ConnectSchema(Schema):
    success = fields.Boolean(required=True)
    auth_url = fields.String(required=True)
    state = fields.String(required=True)


class RefreshedSchema(Schema):
    success = fields.Boolean(required=True)
    message = fields.String(required=True)
    expires_at = fields.String(allow_none=True)


class DisconnectedSchema(Schema):
    success = fields.Boolean(required=True)
    message = fields.String(required=True)
    revoked = fields.Boolean()
    cancelled_posts = fields.Integer()


class QuotaSchema(Schema):
    success = fields.Boolean(required=True)
    account_id = fields.Integer(required=True)
    platform = fields.String(required=True)
    limit = fields.Integer(required=True)
    used = fields.Integer(required=True)
    remaining = fields.Integer(required=True)
    window_hours = fields.Integer(required=True)
    next_slot_at = fields.String(allow_none=True)
    source = fields.String(required=True)


class CallbackQuerySchema(Schema):
    class Meta:
        unknown = "include"

    code = fields.String()
    state = fields.String()
    error = fields.String()
    error_description = fields.String()


class OptionsQuotaSchema(Schema):
    limit = fields.Integer(required=True)
    used = fields.Integer(required=True)
    remaining = fields.Integer(required=True)
    resets_at = fields.String(allow_none=True, required=True, metadata={
        "description": "When the oldest post counted leaves the window (UTC); null when none counts"})


class AccountOptionsDetailSchema(Schema):
    account_id = fields.Integer(required=True)
    platform = fields.String(required=True)
    privacy_level_options = fields.List(fields.String(), required=True, metadata={
        "description": "The privacy levels this account offers now (TikTok: from the creator info, TikTok's values)"})
    privacy_level_required = fields.Boolean(required=True)
    max_video_post_duration_sec = fields.Integer(allow_none=True, metadata={"description": "TikTok"})
    comment_disabled = fields.Boolean(metadata={"description": "TikTok: the creator turned comments off"})
    duet_disabled = fields.Boolean(metadata={"description": "TikTok"})
    stitch_disabled = fields.Boolean(metadata={"description": "TikTok"})
    creator_username = fields.String(allow_none=True)
    creator_nickname = fields.String(allow_none=True)
    caption_limit = fields.Integer(required=True)
    caption_counting = fields.String(required=True)
    first_comment = fields.Boolean(required=True)
    first_comment_limit = fields.Integer(allow_none=True)
    quota = fields.Nested(OptionsQuotaSchema, required=True)


class AccountOptionsSchema(Schema):
    success = fields.Boolean(required=True)
    options = fields.Nested(AccountOptionsDetailSchema, required=True)


class PlatformLimitsSchema(Schema):
    name = fields.String(required=True)
    caption_limit = fields.Integer(required=True)
    caption_counting = fields.String(required=True, metadata={
        "description": "code_points, utf16_units, utf8_bytes or weighted (X: URLs 23, CJK and emoji 2)"})
    caption_unit = fields.String(required=True)
    hashtag_limit = fields.Integer(allow_none=True, required=True)
    mention_limit = fields.Integer(allow_none=True, required=True)
    title_limit = fields.Integer(allow_none=True, required=True)
    media_types = fields.List(fields.String(), required=True)
    video_types = fields.List(fields.String(), required=True)
    video_max_bytes = fields.Integer(allow_none=True, required=True)
    video_min_duration_sec = fields.Float(allow_none=True, required=True)
    video_max_duration_sec = fields.Float(allow_none=True, required=True)
    privacy_levels = fields.List(fields.String(), required=True)
    privacy_required = fields.Boolean(required=True)
    default_privacy = fields.String(allow_none=True, required=True)
    daily_limit = fields.Integer(required=True, metadata={"description": "Posts per account per rolling 24 h"})
    project_daily_limit = fields.Integer(allow_none=True, required=True, metadata={
        "description": "Posts a day for the whole site (YouTube's upload bucket)"})
    first_comment = fields.Boolean(required=True, metadata={"description": "Whether it takes a first comment"})
    first_comment_limit = fields.Integer(allow_none=True, required=True)
    first_comment_counting = fields.String(allow_none=True, required=True)
    first_comment_kind = fields.String(allow_none=True, required=True, metadata={"description": "comment or reply"})
    options = fields.List(fields.String(), required=True)


class PlatformsSchema(Schema):
    success = fields.Boolean(required=True)
    platforms = fields.Dict(keys=fields.String(validate=validate.OneOf(PLATFORMS)),
                            values=fields.Nested(PlatformLimitsSchema), required=True)
