"""Inbound platform webhooks and the Prometheus endpoint."""
from __future__ import annotations

from flask import Response, request
from flask.views import MethodView
from flask_smorest import Blueprint

from bridge.api.deps import BAD_INTERNAL_KEY, INTERNAL_SECURITY, internal_required, runtime
from bridge.schemas.common import ErrorSchema, WebhookAnswerSchema
from bridge.services import webhooks

blp = Blueprint("webhooks", __name__, url_prefix="/aurareels/v1/social", description="Platform webhooks")


def _signed_json(header: str, description: str) -> dict:
    """The documentation of a signed JSON delivery: the raw body is read as sent, never parsed
    before its signature is checked, so it is described here rather than loaded by a schema."""
    return {
        "parameters": [{"name": header, "in": "header", "required": True, "schema": {"type": "string"},
                        "description": description}],
        "requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}},
    }


def _query(*names: str) -> list[dict]:
    return [{"name": name, "in": "query", "required": False, "schema": {"type": "string"}} for name in names]


@blp.route("/webhooks/tiktok")
class TikTokWebhook(MethodView):
    @blp.response(200, WebhookAnswerSchema, description="Handled or already handled")
    @blp.alt_response(400, schema=ErrorSchema, description="Signed, but not a JSON document")
    @blp.alt_response(401, schema=ErrorSchema, description="Bad or old signature")
    @blp.alt_response(415, schema=ErrorSchema, description="Not JSON")
    @blp.doc(**_signed_json("TikTok-Signature", "t=<unix time>,s=<HMAC-SHA256 of '<t>.<body>'>, at most 5 min old"))
    def post(self):
        """TikTok events, signed with TikTok-Signature"""
        return webhooks.receive(runtime(), "tiktok", request.headers, request.get_data())


@blp.route("/webhooks/meta")
class MetaWebhook(MethodView):
    @blp.response(200, description="The hub.challenge, as plain text", content_type="text/plain",
                  example="1158201444")
    @blp.alt_response(403, schema=ErrorSchema, description="Verify token does not match")
    @blp.doc(parameters=_query("hub.mode", "hub.verify_token", "hub.challenge"))
    def get(self):
        """Meta's subscription handshake"""
        return Response(webhooks.meta_verify(runtime(), request.args), mimetype="text/plain")

    @blp.response(200, WebhookAnswerSchema, description="Handled or already handled")
    @blp.alt_response(400, schema=ErrorSchema, description="Signed, but not a JSON document")
    @blp.alt_response(401, schema=ErrorSchema, description="Bad signature")
    @blp.alt_response(415, schema=ErrorSchema, description="Not JSON")
    @blp.doc(**_signed_json("X-Hub-Signature-256", "sha256=<HMAC-SHA256 of the body under the app secret>"))
    def post(self):
        """Meta events (Instagram and Facebook), signed with X-Hub-Signature-256"""
        return webhooks.receive(runtime(), "meta", request.headers, request.get_data())


@blp.route("/metrics")
class Metrics(MethodView):
    decorators = [internal_required]

    @blp.doc(security=INTERNAL_SECURITY)
    @blp.response(200, description="Prometheus text format", content_type="text/plain",
                  example="# HELP aurareels_posts_published_total ...")
    @blp.alt_response(401, **BAD_INTERNAL_KEY)
    def get(self):
        """Prometheus metrics (internal key)"""
        from bridge.services.metrics import render

        body, content_type = render(runtime())
        return Response(body, content_type=content_type)
