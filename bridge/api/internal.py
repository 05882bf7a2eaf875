"""Internal routes (n8n, cron), behind N8N_API_KEY."""
from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint

from bridge.api.deps import BAD_INTERNAL_KEY, INTERNAL_SECURITY, INVALID_JSON, internal_required, runtime
from bridge.schemas.common import ErrorSchema
from bridge.schemas.posts import InternalPublishSchema, RescheduledSchema
from bridge.engine import n8n

blp = Blueprint("internal", __name__, url_prefix="/aurareels/v1/social/internal", description="Internal (n8n)")


@blp.route("/publish-scheduled")
class PublishScheduled(MethodView):
    decorators = [internal_required]

    @blp.arguments(InternalPublishSchema)
    @blp.alt_response(400, **INVALID_JSON)
    @blp.response(200, RescheduledSchema)
    @blp.alt_response(401, **BAD_INTERNAL_KEY)
    @blp.alt_response(404, schema=ErrorSchema, description="No such post")
    @blp.alt_response(409, schema=ErrorSchema, description="Rescheduled, cancelled, already published or publishing")
    @blp.doc(security=INTERNAL_SECURITY)
    def post(self, body):
        """Publish a due post if it is still scheduled for exactly this time"""
        return n8n.publish_scheduled(runtime(), body["post_id"], body["scheduled_at"])
