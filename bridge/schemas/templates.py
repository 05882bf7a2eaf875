from __future__ import annotations

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

from bridge.config import PLATFORMS
from bridge.schemas.content import fits_text, hashtags_field, name_field, small_json


def _distinct(values) -> None:
    if len(set(values)) != len(values):
        raise ValidationError("List each platform once.")


class TemplateFieldsSchema(Schema):
    """What a template holds; every field optional (PATCH changes only what it names)."""

    class Meta:
        unknown = EXCLUDE

    name = name_field()
    caption = fields.String(allow_none=True, validate=[validate.Length(max=20000), fits_text])
    hashtags = hashtags_field()
    platforms = fields.List(fields.String(validate=validate.OneOf(PLATFORMS)),
                            validate=[validate.Length(max=len(PLATFORMS)), _distinct])
    options = fields.Dict(keys=fields.String(validate=validate.Length(min=1, max=64)), values=fields.Raw(),
                          validate=small_json,
                          metadata={"description": "Per-platform options, as /publish takes them"})


class TemplateCreateSchema(TemplateFieldsSchema):
    name = name_field(required=True)


class TemplateSchema(Schema):
    id = fields.Integer(required=True)
    name = fields.String(required=True)
    caption = fields.String(allow_none=True, required=True)
    hashtags = fields.List(fields.String(), required=True)
    platforms = fields.List(fields.String(), required=True)
    options = fields.Dict(required=True)
    created_at = fields.String(allow_none=True)
    updated_at = fields.String(allow_none=True)


class TemplateEnvelopeSchema(Schema):
    success = fields.Boolean(required=True)
    template = fields.Nested(TemplateSchema, required=True)


class TemplateListSchema(Schema):
    success = fields.Boolean(required=True)
    templates = fields.List(fields.Nested(TemplateSchema), required=True)


class DeletedSchema(Schema):
    success = fields.Boolean(required=True)
    message = fields.String(required=True)
    id = fields.Integer(required=True)
