"""Publish now, schedule, and the posts of the signed-in user."""
from __future__ import annotations

from flask import request
from flask.views import MethodView
from flask_smorest import Blueprint

from bridge.api.deps import INVALID_JSON, UNAUTHORIZED, USER_SECURITY, current_user_id, runtime, user_required
from bridge.api.ratelimit import RATE_LIMITED, rate_limited
from bridge.errors import ValidationFailed
from bridge.schemas.common import ErrorSchema, MessageSchema
from bridge.schemas.posts import (
    CreatedPostsSchema,
    EditSchema,
    PostChangedSchema,
    PostEnvelopeSchema,
    PostListSchema,
    PostQuerySchema,
    PublishSchema,
    RescheduledSchema,
    RescheduleSchema,
    ScheduleSchema,
)
from bridge.services import editing
from bridge.services import posts as post_service
from bridge.timefmt import parse_request_time

blp = Blueprint("posts", __name__, url_prefix="/aurareels/v1/social", description="Publishing and scheduling")

IDEMPOTENCY = {"name": "Idempotency-Key", "in": "header", "required": False, "schema": {"type": "string"},
               "description": "A repeated request with the same key returns the first answer and creates nothing."}


def _time(raw: str, field: str):
    try:
        return parse_request_time(raw, runtime().settings.tz)
    except ValueError as exc:
        raise ValidationFailed(str(exc), code="invalid_datetime", errors={field: [str(exc)]}) from None


@blp.route("/publish")
class Publish(MethodView):
    decorators = [user_required, rate_limited()]

    @blp.arguments(PublishSchema)
    @blp.alt_response(400, **INVALID_JSON)
    @blp.response(200, CreatedPostsSchema)
    @blp.alt_response(404, schema=ErrorSchema, description="Video or account not found")
    @blp.alt_response(409, schema=ErrorSchema, description="An account must be connected again")
    @blp.alt_response(422, schema=ErrorSchema, description="The content does not fit a platform")
    @blp.alt_response(429, **RATE_LIMITED)
    @blp.alt_response(401, **UNAUTHORIZED)
    @blp.doc(security=USER_SECURITY, parameters=[IDEMPOTENCY])
    def post(self, body):
        """Publish a video now to several accounts"""
        return post_service.create_posts(runtime(), current_user_id(), body, scheduled_at=None,
                                         idem_key=request.headers.get("Idempotency-Key"))


@blp.route("/schedule")
class Schedule(MethodView):
    decorators = [user_required, rate_limited()]

    @blp.arguments(ScheduleSchema)
    @blp.alt_response(400, **INVALID_JSON)
    @blp.response(200, CreatedPostsSchema)
    @blp.alt_response(404, schema=ErrorSchema, description="Video or account not found")
    @blp.alt_response(409, schema=ErrorSchema, description="An account must be connected again")
    @blp.alt_response(422, schema=ErrorSchema, description="Bad time, more than 365 days ahead, or content")
    @blp.alt_response(429, **RATE_LIMITED)
    @blp.alt_response(401, **UNAUTHORIZED)
    @blp.doc(security=USER_SECURITY, parameters=[IDEMPOTENCY])
    def post(self, body):
        """Schedule a video for later on several accounts"""
        when = _time(body["scheduled_at"], "scheduled_at")
        return post_service.create_posts(runtime(), current_user_id(), body, scheduled_at=when,
                                         idem_key=request.headers.get("Idempotency-Key"))


@blp.route("/posts")
class Posts(MethodView):
    decorators = [user_required]

    @blp.arguments(PostQuerySchema, location="query")
    @blp.response(200, PostListSchema)
    @blp.alt_response(401, **UNAUTHORIZED)
    @blp.doc(security=USER_SECURITY)
    def get(self, query):
        """The user's posts, newest first; from/to filter the calendar window, group_id one submission"""
        if query.get("from_"):
            query["from"] = _time(query.pop("from_"), "from")
        if query.get("to"):
            query["to"] = _time(query["to"], "to")
        return post_service.list_posts(runtime(), current_user_id(), query)


@blp.route("/posts/<int:post_id>")
class Post(MethodView):
    decorators = [user_required]

    @blp.response(200, PostEnvelopeSchema)
    @blp.alt_response(404, schema=ErrorSchema, description="Not found or not yours")
    @blp.alt_response(401, **UNAUTHORIZED)
    @blp.doc(security=USER_SECURITY)
    def get(self, post_id):
        """One post with its account"""
        return post_service.get_post(runtime(), current_user_id(), post_id)

    @blp.arguments(EditSchema)
    @blp.alt_response(400, **INVALID_JSON)
    @blp.response(200, PostChangedSchema)
    @blp.alt_response(404, schema=ErrorSchema, description="Not found or not yours")
    @blp.alt_response(409, schema=ErrorSchema, description="Not a draft or scheduled post (not_editable), or the "
                                                            "account must be connected again")
    @blp.alt_response(422, schema=ErrorSchema, description="The edited post does not fit its platform, or a bad time")
    @blp.alt_response(401, **UNAUTHORIZED)
    @blp.doc(security=USER_SECURITY)
    def patch(self, body, post_id):
        """Edit a draft or scheduled post; validated as /schedule is"""
        when = _time(body["scheduled_at"], "scheduled_at") if body.get("scheduled_at") else None
        return editing.edit(runtime(), current_user_id(), post_id, body, when)

    @blp.response(200, MessageSchema)
    @blp.alt_response(404, schema=ErrorSchema, description="Not found or not yours")
    @blp.alt_response(409, schema=ErrorSchema, description="Not scheduled or draft")
    @blp.alt_response(401, **UNAUTHORIZED)
    @blp.doc(security=USER_SECURITY)
    def delete(self, post_id):
        """Cancel a scheduled post, or delete a draft"""
        return post_service.cancel(runtime(), current_user_id(), post_id)


@blp.route("/posts/<int:post_id>/reschedule")
class Reschedule(MethodView):
    decorators = [user_required]

    @blp.arguments(RescheduleSchema)
    @blp.alt_response(400, **INVALID_JSON)
    @blp.response(200, RescheduledSchema)
    @blp.alt_response(404, schema=ErrorSchema, description="Not found or not yours")
    @blp.alt_response(409, schema=ErrorSchema, description="Not scheduled")
    @blp.alt_response(401, **UNAUTHORIZED)
    @blp.doc(security=USER_SECURITY)
    def patch(self, body, post_id):
        """Move a scheduled post to a new time"""
        return post_service.reschedule(runtime(), current_user_id(), post_id, _time(body["scheduled_at"],
                                                                                     "scheduled_at"))


@blp.route("/posts/<int:post_id>/retry")
class Retry(MethodView):
    decorators = [user_required]

    @blp.response(200, RescheduledSchema)
    @blp.alt_response(404, schema=ErrorSchema, description="Not found or not yours")
    @blp.alt_response(409, schema=ErrorSchema, description="Not failed, retried 3 times already "
                                                            "(retry_limit_reached), or the account must be connected "
                                                            "again")
    @blp.alt_response(401, **UNAUTHORIZED)
    @blp.doc(security=USER_SECURITY)
    def post(self, post_id):
        """Retry a failed post (an unconfirmed one is checked on the platform first)"""
        return post_service.retry(runtime(), current_user_id(), post_id)
