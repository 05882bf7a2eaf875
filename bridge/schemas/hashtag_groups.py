from __future__ import annotations

from marshmallow import EXCLUDE, Schema, fields

from bridge.schemas.content import hashtags_field, name_field


class HashtagGroupFieldsSchema(Schema):
    """What a hashtag group holds; every field optional (PATCH changes only what it names)."""

    class Meta:
        unknown = EXCLUDE

    name = name_field()
    hashtags = hashtags_field(min_items=1)


class HashtagGroupCreateSchema(HashtagGroupFieldsSchema):
    name = name_field(required=True)
    hashtags = hashtags_field(min_items=1, required=True)


class HashtagGroupSchema(Schema):
    id = fields.Integer(required=True)
    name = fields.String(required=True)
    hashtags = fields.List(fields.String(), required=True)
    created_at = fields.String(allow_none=True)
    updated_at = fields.String(allow_none=True)


class HashtagGroupEnvelopeSchema(Schema):
    success = fields.Boolean(required=True)
    hashtag_group = fields.Nested(HashtagGroupSchema, required=True)


class HashtagGroupListSchema(Schema):
    success = fields.Boolean(required=True)
    hashtag_groups = fields.List(fields.Nested(HashtagGroupSchema), required=True)
