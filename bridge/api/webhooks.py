"""Inbound platform webhooks and the Prometheus endpoint."""
from __future__ import annotations

from flask import Response, request
from flask.views import MethodView
from flask_smorest import Blueprint

from bridge.api.deps import internal_required, runtime
from bridge.schemas.common import ErrorSchema
from bridge.services import webhooks

blp = Blueprint("webhooks", __name__, url_prefix="/aurareels/v1/social", description="Platform webhooks")


@blp.route("/webhooks/tiktok")
class TikTokWebhook(MethodView):
    @blp.response(200, description="Handled or already handled")
    @blp.alt_response(401, schema=ErrorSchema, description="Bad or old signature")
    @blp.alt_response(415, schema=ErrorSchema, description="Not JSON")
    def post(self):
        """TikTok events, signed with TikTok-Signature"""
        return webhooks.tiktok(runtime(), request.headers, request.get_data())


@blp.route("/webhooks/meta")
class MetaWebhook(MethodView):
    @blp.response(200, description="The hub.challenge, as plain text")
    @blp.alt_response(403, schema=ErrorSchema, description="Verify token does not match")
    def get(self):
        """Meta's subscription handshake"""
        return Response(webhooks.meta_verify(runtime(), request.args), mimetype="text/plain")

    @blp.response(200, description="Handled or already handled")
    @blp.alt_response(401, schema=ErrorSchema, description="Bad signature")
    def post(self):
        """Meta events (Instagram and Facebook), signed with X-Hub-Signature-256"""
        return webhooks.meta(runtime(), request.headers, request.get_data())


@blp.route("/metrics")
class Metrics(MethodView):
    decorators = [internal_required]

    @blp.doc(security=[{"internalKey": []}])
    @blp.response(200, description="Prometheus text format")
    def get(self):
        """Prometheus metrics (internal key)"""
        from bridge.services.metrics import render

        body, content_type = render(runtime())
        return Response(body, content_type=content_type)
