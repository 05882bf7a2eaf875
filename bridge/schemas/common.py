from __future__ import annotations

from marshmallow import Schema, fields


class ErrorSchema(Schema):
    """The error envelope every error answer carries."""

    class Meta:
        ordered = True

    success = fields.Boolean(required=True, metadata={"example": False})
    code = fields.String(required=True, metadata={"example": "not_found"})
    message = fields.String(required=True)
    errors = fields.Dict(keys=fields.String(), values=fields.Raw())


class MessageSchema(Schema):
    success = fields.Boolean(required=True)
    message = fields.String(required=True)


class WebhookAnswerSchema(Schema):
    """What a webhook delivery is answered (platforms only look at the 200)."""

    success = fields.Boolean(required=True)
    message = fields.String(required=True, metadata={"example": "Handled"})
    event = fields.String(metadata={"description": "TikTok: the event name"})
    posts = fields.List(fields.Integer(), metadata={"description": "TikTok: the posts woken to read their status"})
    accounts_marked = fields.Integer(metadata={"description": "Meta: accounts marked as needing reconnection"})
