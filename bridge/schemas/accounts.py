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
