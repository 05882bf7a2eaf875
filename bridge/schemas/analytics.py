from __future__ import annotations

from marshmallow import EXCLUDE, Schema, fields, validate

from bridge.config import PLATFORMS

_ID = validate.Range(min=1, max=2**63 - 1)


class FiguresSchema(Schema):
    views = fields.Integer(required=True)
    likes = fields.Integer(required=True)
    comments = fields.Integer(required=True)
    shares = fields.Integer(required=True)
    saves = fields.Integer(required=True, allow_none=True,
                           metadata={"description": "null where the platform does not report saves"})
    reach = fields.Integer(required=True, allow_none=True,
                           metadata={"description": "null where the platform does not report reach"})
    engagement_rate = fields.Float(required=True, allow_none=True,
                                   metadata={"description": "(likes + comments + shares + saves) per 100 views"})
    synced_at = fields.String(required=True, metadata={"example": "2025-12-25 18:00:00"})


class HistoryPointSchema(Schema):
    synced_at = fields.String(required=True)
    views = fields.Integer(required=True)
    likes = fields.Integer(required=True)
    comments = fields.Integer(required=True)
    shares = fields.Integer(required=True)
    saves = fields.Integer(allow_none=True)
    reach = fields.Integer(allow_none=True)


class SyncStateSchema(Schema):
    status = fields.String(required=True, validate=validate.OneOf(
        ("pending", "synced", "retrying", "unavailable", "not_published")), metadata={
        "description": "unavailable: the platform cannot give this post's metrics (e.g. metrics_unavailable); "
                       "the periodic sync no longer asks, a refresh asks again"})
    code = fields.String(allow_none=True)
    message = fields.String(allow_none=True)
    last_attempt_at = fields.String(allow_none=True)
    next_sync_at = fields.String(allow_none=True)


class PostAnalyticsSchema(Schema):
    success = fields.Boolean(required=True)
    analytics = fields.Nested(FiguresSchema, required=True, allow_none=True,
                              metadata={"description": "null before the first sync"})
    history = fields.List(fields.Nested(HistoryPointSchema), required=True,
                          metadata={"description": "every fetch, oldest first (the last 500)"})
    sync = fields.Nested(SyncStateSchema, required=True)


class SummaryQuerySchema(Schema):
    class Meta:
        unknown = EXCLUDE

    from_ = fields.String(data_key="from", validate=validate.Length(min=1, max=40), metadata={
        "description": "Start of the window (posts published from then): YYYY-MM-DD HH:MM:SS in the site's zone "
                       "or ISO 8601; default 30 days before `to`"})
    to = fields.String(validate=validate.Length(min=1, max=40), metadata={"description": "End; default now"})
    platform = fields.String(validate=validate.OneOf(PLATFORMS))
    account_id = fields.Integer(validate=_ID)


class TotalsSchema(Schema):
    posts = fields.Integer(required=True, metadata={"description": "posts published in the window"})
    synced_posts = fields.Integer(required=True, metadata={"description": "of which with synced figures"})
    views = fields.Integer(required=True)
    likes = fields.Integer(required=True)
    comments = fields.Integer(required=True)
    shares = fields.Integer(required=True)
    saves = fields.Integer(required=True, allow_none=True)
    reach = fields.Integer(required=True, allow_none=True)
    engagements = fields.Integer(required=True)
    engagement_rate = fields.Float(required=True, allow_none=True)


class AccountTotalsSchema(TotalsSchema):
    id = fields.Integer(required=True)
    platform = fields.String(required=True)
    account_name = fields.String(required=True, allow_none=True)
    account_username = fields.String(allow_none=True)


class TopPostSchema(Schema):
    id = fields.Integer(required=True)
    platform = fields.String(required=True)
    social_account_id = fields.Integer(required=True)
    account_name = fields.String(required=True)
    caption = fields.String(allow_none=True)
    platform_post_url = fields.String(allow_none=True)
    published_at = fields.String(allow_none=True)
    views = fields.Integer(required=True)
    likes = fields.Integer(required=True)
    comments = fields.Integer(required=True)
    shares = fields.Integer(required=True)
    saves = fields.Integer(allow_none=True)
    reach = fields.Integer(allow_none=True)
    engagements = fields.Integer(required=True)
    engagement_rate = fields.Float(allow_none=True)
    synced_at = fields.String(allow_none=True)


class SummarySchema(Schema):
    success = fields.Boolean(required=True)
    from_ = fields.String(data_key="from", attribute="from", required=True)
    to = fields.String(required=True)
    platform = fields.String(allow_none=True)
    account_id = fields.Integer(allow_none=True)
    totals = fields.Nested(TotalsSchema, required=True)
    platforms = fields.Dict(keys=fields.String(), values=fields.Nested(TotalsSchema), required=True)
    accounts = fields.List(fields.Nested(AccountTotalsSchema), required=True)
    top_posts = fields.List(fields.Nested(TopPostSchema), required=True,
                            metadata={"description": "the 10 posts with the most engagements"})


class BestTimesQuerySchema(Schema):
    class Meta:
        unknown = EXCLUDE

    platform = fields.String(validate=validate.OneOf(PLATFORMS))
    account_id = fields.Integer(validate=_ID)


class SlotSchema(Schema):
    weekday = fields.Integer(required=True, metadata={"description": "0 = Monday"})
    hour = fields.Integer(required=True, metadata={"description": "0-23 in the site's zone"})
    score = fields.Float(required=True, metadata={
        "description": "expected engagement relative to the user's usual (1.0); for defaults, their rank"})
    sample_size = fields.Integer(required=True, metadata={"description": "own posts behind the score (0: default)"})


class BestTimesSchema(Schema):
    success = fields.Boolean(required=True)
    basis = fields.String(required=True, validate=validate.OneOf(("own_posts", "default")))
    platform = fields.String(allow_none=True)
    timezone = fields.String(required=True)
    posts_analyzed = fields.Integer(required=True)
    slots = fields.List(fields.Nested(SlotSchema), required=True)
