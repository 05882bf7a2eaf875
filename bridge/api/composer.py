"""What the composer needs before anything is created: validation and the platforms' limits."""
from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint

from bridge.api.deps import INVALID_JSON, UNAUTHORIZED, USER_SECURITY, current_user_id, runtime, user_required
from bridge.api.ratelimit import RATE_LIMITED, rate_limited
from bridge.api.posts import _time
from bridge.schemas.accounts import PlatformsSchema
from bridge.schemas.common import ErrorSchema
from bridge.schemas.posts import ValidateSchema, ValidationSchema
from bridge.services import platforms, validation

blp = Blueprint("composer", __name__, url_prefix="/aurareels/v1/social", description="Composer")


@blp.route("/validate")
class Validate(MethodView):
    decorators = [user_required, rate_limited()]

    @blp.arguments(ValidateSchema)
    @blp.alt_response(400, **INVALID_JSON)
    @blp.response(200, ValidationSchema)
    @blp.alt_response(404, schema=ErrorSchema, description="Video or account not found")
    @blp.alt_response(422, schema=ErrorSchema, description="The body is not valid")
    @blp.alt_response(429, **RATE_LIMITED)
    @blp.alt_response(401, **UNAUTHORIZED)
    @blp.doc(security=USER_SECURITY)
    def post(self, body):
        """Every rule /publish and /schedule would apply, for every account at once; creates nothing"""
        when = _time(body["scheduled_at"], "scheduled_at") if body.get("scheduled_at") else None
        return validation.validate(runtime(), current_user_id(), body, when)


@blp.route("/platforms")
class Platforms(MethodView):
    decorators = [user_required]

    @blp.response(200, PlatformsSchema)
    @blp.alt_response(401, **UNAUTHORIZED)
    @blp.doc(security=USER_SECURITY)
    def get(self):
        """Each platform's limits: caption (and how it is counted), hashtags, media, privacy, quota, first comment"""
        return platforms.describe(runtime().settings)
