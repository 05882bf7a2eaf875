"""Drafts: save without publishing, then publish now or schedule."""
from __future__ import annotations

from flask import request
from flask.views import MethodView
from flask_smorest import Blueprint

from bridge.api.deps import INVALID_JSON, UNAUTHORIZED, USER_SECURITY, current_user_id, runtime, user_required
from bridge.api.ratelimit import RATE_LIMITED, rate_limited
from bridge.api.posts import IDEMPOTENCY, _time
from bridge.schemas.common import ErrorSchema
from bridge.schemas.posts import CreatedPostsSchema, DraftSchema, PostChangedSchema, RescheduleSchema
from bridge.services import drafts

blp = Blueprint("drafts", __name__, url_prefix="/aurareels/v1/social", description="Drafts")


@blp.route("/drafts")
class Drafts(MethodView):
    decorators = [user_required, rate_limited()]

    @blp.arguments(DraftSchema)
    @blp.alt_response(400, **INVALID_JSON)
    @blp.response(200, CreatedPostsSchema)
    @blp.alt_response(404, schema=ErrorSchema, description="Video or account not found")
    @blp.alt_response(422, schema=ErrorSchema, description="Options or a first comment no platform takes, or the "
                                                            "video has no MP4 yet")
    @blp.alt_response(429, **RATE_LIMITED)
    @blp.alt_response(401, **UNAUTHORIZED)
    @blp.doc(security=USER_SECURITY, parameters=[IDEMPOTENCY])
    def post(self, body):
        """Save drafts for several accounts; nothing is queued (what a platform would refuse is in `issues`)"""
        return drafts.create_drafts(runtime(), current_user_id(), body, request.headers.get("Idempotency-Key"))


@blp.route("/posts/<int:post_id>/publish")
class PublishDraft(MethodView):
    decorators = [user_required]

    @blp.response(200, PostChangedSchema)
    @blp.alt_response(404, schema=ErrorSchema, description="Not found or not yours")
    @blp.alt_response(409, schema=ErrorSchema, description="Not a draft, or the account must be connected again")
    @blp.alt_response(422, schema=ErrorSchema, description="The draft does not fit its platform")
    @blp.alt_response(401, **UNAUTHORIZED)
    @blp.doc(security=USER_SECURITY)
    def post(self, post_id):
        """A draft goes out now"""
        return drafts.publish(runtime(), current_user_id(), post_id)


@blp.route("/posts/<int:post_id>/schedule")
class ScheduleDraft(MethodView):
    decorators = [user_required]

    @blp.arguments(RescheduleSchema)
    @blp.alt_response(400, **INVALID_JSON)
    @blp.response(200, PostChangedSchema)
    @blp.alt_response(404, schema=ErrorSchema, description="Not found or not yours")
    @blp.alt_response(409, schema=ErrorSchema, description="Not a draft, or the account must be connected again")
    @blp.alt_response(422, schema=ErrorSchema, description="A bad time, or the draft does not fit its platform")
    @blp.alt_response(401, **UNAUTHORIZED)
    @blp.doc(security=USER_SECURITY)
    def post(self, body, post_id):
        """A draft becomes scheduled for `scheduled_at`"""
        return drafts.schedule(runtime(), current_user_id(), post_id, _time(body["scheduled_at"], "scheduled_at"))
