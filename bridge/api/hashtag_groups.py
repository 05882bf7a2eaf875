"""The user's hashtag groups."""
from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint

from bridge.api.deps import INVALID_JSON, UNAUTHORIZED, USER_SECURITY, current_user_id, runtime, user_required
from bridge.schemas.common import ErrorSchema
from bridge.schemas.hashtag_groups import (
    HashtagGroupCreateSchema,
    HashtagGroupEnvelopeSchema,
    HashtagGroupFieldsSchema,
    HashtagGroupListSchema,
)
from bridge.schemas.templates import DeletedSchema
from bridge.services import hashtag_groups as group_service

blp = Blueprint("hashtag_groups", __name__, url_prefix="/aurareels/v1/social", description="Hashtag groups")


@blp.route("/hashtag-groups")
class HashtagGroups(MethodView):
    decorators = [user_required]

    @blp.response(200, HashtagGroupListSchema)
    @blp.alt_response(401, **UNAUTHORIZED)
    @blp.doc(security=USER_SECURITY)
    def get(self):
        """The user's hashtag groups"""
        return group_service.list_groups(runtime(), current_user_id())

    @blp.arguments(HashtagGroupCreateSchema)
    @blp.alt_response(400, **INVALID_JSON)
    @blp.response(200, HashtagGroupEnvelopeSchema)
    @blp.alt_response(409, schema=ErrorSchema, description="Too many hashtag groups")
    @blp.alt_response(401, **UNAUTHORIZED)
    @blp.doc(security=USER_SECURITY)
    def post(self, body):
        """Save a new hashtag group"""
        return group_service.create_group(runtime(), current_user_id(), body)


@blp.route("/hashtag-groups/<int:group_id>")
class HashtagGroup(MethodView):
    decorators = [user_required]

    @blp.arguments(HashtagGroupFieldsSchema)
    @blp.alt_response(400, **INVALID_JSON)
    @blp.response(200, HashtagGroupEnvelopeSchema)
    @blp.alt_response(404, schema=ErrorSchema, description="Not found or not yours")
    @blp.alt_response(401, **UNAUTHORIZED)
    @blp.doc(security=USER_SECURITY)
    def patch(self, body, group_id):
        """Change the fields given of a hashtag group"""
        return group_service.update_group(runtime(), current_user_id(), group_id, body)

    @blp.response(200, DeletedSchema)
    @blp.alt_response(404, schema=ErrorSchema, description="Not found or not yours")
    @blp.alt_response(401, **UNAUTHORIZED)
    @blp.doc(security=USER_SECURITY)
    def delete(self, group_id):
        """Delete a hashtag group"""
        return group_service.delete_group(runtime(), current_user_id(), group_id)
