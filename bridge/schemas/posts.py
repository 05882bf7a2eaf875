from __future__ import annotations

import json

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

from bridge.config import PLATFORMS
from bridge.domain.status import Status
from bridge.services.posts import PLATFORM_PRIVACY


# caption, hashtags and mentions are TEXT columns in the WordPress DDL: 65,535 bytes. A limit in
# characters alone lets 4-byte characters (emoji) overflow them, and the database refuses the row.
TEXT_BYTES = 65_535


def _fits_text(value: str | None) -> None:
    if value is not None and len(value.encode("utf-8")) > TEXT_BYTES:
        raise ValidationError(f"Longer than the {TEXT_BYTES} bytes the post can store; shorten it.")


def _fits_text_as_json(values: list) -> None:
    # stored as json.dumps(values), where one non-ASCII character can take up to 12 bytes
    if len(json.dumps(values)) > TEXT_BYTES:
        raise ValidationError(f"Together longer than the {TEXT_BYTES} bytes the post can store; use fewer or "
                              f"shorter ones.")


def _caption() -> fields.Field:
    return fields.String(allow_none=True, validate=[validate.Length(max=20000), _fits_text])


def _words() -> fields.Field:
    """Hashtags or mentions."""
    return fields.List(fields.String(validate=validate.Length(min=1, max=150)),
                       validate=[validate.Length(max=100), _fits_text_as_json])


def _title() -> fields.Field:
    return fields.String(allow_none=True, validate=validate.Length(max=500))


def _captions() -> fields.Field:
    return fields.Dict(keys=fields.String(validate=validate.OneOf(PLATFORMS)),
                       values=fields.String(validate=[validate.Length(max=20000), _fits_text]),
                       validate=validate.Length(max=len(PLATFORMS)), metadata={"description": (
                           "A caption per platform (platform -> caption) that replaces `caption` for that platform, "
                           "checked by that platform's rules.")})


def _first_comment() -> fields.Field:
    return fields.String(allow_none=True, validate=[validate.Length(max=10000), _fits_text], metadata={
        "description": "Posted as the first comment (a reply on X) right after the post is live, on the platforms "
                       "that take one; not on TikTok. GET /platforms gives each platform's limit."})


class PublishSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    video_job_id = fields.String(required=True, validate=validate.Length(min=1, max=255))
    accounts = fields.List(fields.Integer(strict=False, validate=validate.Range(min=1)), required=True,
                           validate=validate.Length(min=1, max=30))
    caption = _caption()
    hashtags = _words()
    mentions = _words()
    title = _title()
    privacy_level = fields.String(validate=validate.OneOf(PLATFORM_PRIVACY))
    allow_comments = fields.Boolean()
    allow_duet = fields.Boolean()
    allow_stitch = fields.Boolean()
    location = fields.String(allow_none=True, validate=validate.Length(max=255))
    thumbnail_url = fields.Url(allow_none=True, schemes=("http", "https"), validate=validate.Length(max=2048))
    media_type = fields.String(validate=validate.OneOf(("video", "image", "carousel", "text")))
    options = fields.Dict(keys=fields.String(validate=validate.Length(min=1, max=64)), values=fields.Raw(),
                          validate=validate.Length(max=32), metadata={"description": (
                              "Per-platform options, each checked by the platforms selected (e.g. tiktok_source, "
                              "facebook_mode, image_urls, items). An option none of the selected platforms accepts "
                              "is refused; the README's platform table lists them.")})
    captions = _captions()
    first_comment = _first_comment()


class DraftSchema(PublishSchema):
    """The body of /publish, saved as drafts."""


class ScheduleSchema(PublishSchema):
    scheduled_at = fields.String(required=True, validate=validate.Length(min=1, max=40), metadata={
        "example": "2025-12-25 18:00:00",
        "description": "YYYY-MM-DD HH:MM:SS in the site's zone, or ISO 8601 with an offset or Z"})


class ValidateSchema(PublishSchema):
    scheduled_at = fields.String(validate=validate.Length(min=1, max=40), metadata={
        "description": "When the post would go out (the quota is counted for that time); leave out for now"})


class RescheduleSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    scheduled_at = fields.String(required=True, validate=validate.Length(min=1, max=40))


class EditSchema(Schema):
    """`PATCH /posts/{id}`: any of these; what is left out stays as it is."""

    class Meta:
        unknown = EXCLUDE

    caption = _caption()
    captions = _captions()
    hashtags = _words()
    mentions = _words()
    title = _title()
    privacy_level = fields.String(allow_none=True, validate=validate.OneOf(PLATFORM_PRIVACY))
    allow_comments = fields.Boolean()
    allow_duet = fields.Boolean()
    allow_stitch = fields.Boolean()
    options = fields.Dict(keys=fields.String(validate=validate.Length(min=1, max=64)), values=fields.Raw(),
                          allow_none=True, validate=validate.Length(max=32),
                          metadata={"description": "Replaces the post's options (null: none)"})
    first_comment = _first_comment()
    scheduled_at = fields.String(validate=validate.Length(min=1, max=40), metadata={
        "description": "A scheduled post moves to this time; a draft keeps it as its planned time"})


class PostQuerySchema(Schema):
    class Meta:
        unknown = EXCLUDE

    status = fields.String(validate=validate.OneOf([s.value for s in Status]))
    platform = fields.String(validate=validate.OneOf(PLATFORMS))
    from_ = fields.String(data_key="from", validate=validate.Length(max=40))
    to = fields.String(validate=validate.Length(max=40))
    group_id = fields.String(validate=validate.Length(min=1, max=64), metadata={
        "description": "The posts of one submission (the group_id of its answer)"})
    video_job_id = fields.String(validate=validate.Length(min=1, max=255))
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=100000))
    per_page = fields.Integer(load_default=20, validate=validate.Range(min=1, max=100))


class IssueSchema(Schema):
    field = fields.String(required=True, metadata={"example": "caption"})
    code = fields.String(required=True, metadata={"example": "caption_too_long"})
    message = fields.String(required=True)


class CreatedPostSchema(Schema):
    id = fields.Integer(required=True)
    platform = fields.String(required=True)
    status = fields.String(required=True)
    account_name = fields.String()
    scheduled_at = fields.String()
    group_id = fields.String()
    issues = fields.List(fields.Nested(IssueSchema), metadata={
        "description": "Drafts: what the platform would refuse if it went out as it is"})


class CreatedPostsSchema(Schema):
    success = fields.Boolean(required=True)
    message = fields.String(required=True)
    group_id = fields.String(required=True, metadata={"description": "Ties the posts of this submission"})
    posts = fields.List(fields.Nested(CreatedPostSchema), required=True)


class PostAccountSchema(Schema):
    id = fields.Integer(required=True)
    account_name = fields.String(required=True)
    account_username = fields.String(allow_none=True)
    token_expires_at = fields.String(allow_none=True)
    needs_reconnect = fields.Boolean()
    reconnect_reason = fields.String(allow_none=True)


class ProgressSchema(Schema):
    sent = fields.Integer()
    total = fields.Integer()
    percent = fields.Float(allow_none=True)


class FirstCommentStateSchema(Schema):
    status = fields.String(required=True, metadata={
        "description": "waiting (the post is not live yet), pending, posted, failed, unconfirmed, or cancelled "
                       "with its post"})
    platform_comment_id = fields.String(allow_none=True, required=True)
    text = fields.String(allow_none=True)
    error_message = fields.String(allow_none=True)


class PostSummarySchema(Schema):
    id = fields.Integer(required=True)
    platform = fields.String(required=True)
    status = fields.String(required=True)
    caption = fields.String(allow_none=True)
    platform_post_url = fields.String(allow_none=True)
    scheduled_at = fields.String(allow_none=True)
    published_at = fields.String(allow_none=True)
    video_job_id = fields.String(required=True)
    social_account_id = fields.Integer(required=True)
    account_name = fields.String(required=True)
    error_message = fields.String(allow_none=True)
    error_code = fields.String(allow_none=True)
    retry_count = fields.Integer()
    group_id = fields.String(allow_none=True)
    first_comment = fields.Nested(FirstCommentStateSchema, allow_none=True)


class PostDetailSchema(PostSummarySchema):
    hashtags = fields.List(fields.String())
    mentions = fields.List(fields.String())
    platform_post_id = fields.String(allow_none=True)
    video_url = fields.String()
    thumbnail_url = fields.String(allow_none=True)
    privacy_level = fields.String(allow_none=True)
    last_retry_at = fields.String(allow_none=True)
    created_at = fields.String(allow_none=True)
    progress = fields.Nested(ProgressSchema, allow_none=True)
    outcome_unconfirmed = fields.Boolean()
    account = fields.Nested(PostAccountSchema, required=True)
    title = fields.String(allow_none=True)
    media_type = fields.String()
    options = fields.Dict(keys=fields.String(), values=fields.Raw())
    allow_comments = fields.Boolean()
    allow_duet = fields.Boolean()
    allow_stitch = fields.Boolean()


class PostListSchema(Schema):
    success = fields.Boolean(required=True)
    total = fields.Integer(required=True)
    page = fields.Integer()
    per_page = fields.Integer()
    posts = fields.List(fields.Nested(PostSummarySchema), required=True)


class PostEnvelopeSchema(Schema):
    success = fields.Boolean(required=True)
    post = fields.Nested(PostDetailSchema, required=True)


class PostChangedSchema(Schema):
    """An edited draft or scheduled post, or a draft moved on."""

    success = fields.Boolean(required=True)
    message = fields.String()
    post = fields.Nested(PostDetailSchema, required=True)


class QuotaStateSchema(Schema):
    limit = fields.Integer(required=True)
    used = fields.Integer(required=True)
    remaining = fields.Integer(required=True)
    resets_at = fields.String(allow_none=True, required=True, metadata={
        "description": "When the oldest post counted leaves the window (UTC); null when none counts"})


class AccountValidationSchema(Schema):
    id = fields.Integer(required=True)
    platform = fields.String(required=True)
    ok = fields.Boolean(required=True)
    errors = fields.List(fields.Nested(IssueSchema), required=True)
    warnings = fields.List(fields.Nested(IssueSchema), metadata={"description": "Never refuse the post"})
    caption_length = fields.Integer(required=True, metadata={"description": "Counted the platform's way"})
    caption_limit = fields.Integer(required=True)
    caption_counting = fields.String()
    first_comment = fields.Boolean(metadata={"description": "Whether this post carries the first comment"})
    privacy_level = fields.String(allow_none=True)
    quota = fields.Nested(QuotaStateSchema, allow_none=True)


class ValidationSchema(Schema):
    success = fields.Boolean(required=True)
    valid = fields.Boolean(required=True)
    errors = fields.List(fields.Nested(IssueSchema), metadata={
        "description": "What no selected platform would take (unknown options, a past time, ...)"})
    accounts = fields.List(fields.Nested(AccountValidationSchema), required=True)


class RescheduledSchema(Schema):
    success = fields.Boolean(required=True)
    message = fields.String(required=True)
    post = fields.Dict(required=True)


class InternalPublishSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    post_id = fields.Integer(required=True, strict=False, validate=validate.Range(min=1))
    scheduled_at = fields.String(required=True, validate=validate.Length(min=1, max=40))
