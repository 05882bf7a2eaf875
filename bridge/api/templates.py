"""The user's post templates."""
from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint

from bridge.api.deps import INVALID_JSON, UNAUTHORIZED, USER_SECURITY, current_user_id, runtime, user_required
from bridge.schemas.common import ErrorSchema
from bridge.schemas.templates import (
    DeletedSchema,
    TemplateCreateSchema,
    TemplateEnvelopeSchema,
    TemplateFieldsSchema,
    TemplateListSchema,
)
from bridge.services import templates as template_service

blp = Blueprint("templates", __name__, url_prefix="/aurareels/v1/social", description="Post templates")


@blp.route("/templates")
class Templates(MethodView):
    decorators = [user_required]

    @blp.response(200, TemplateListSchema)
    @blp.alt_response(401, **UNAUTHORIZED)
    @blp.doc(security=USER_SECURITY)
    def get(self):
        """The user's post templates"""
        return template_service.list_templates(runtime(), current_user_id())

    @blp.arguments(TemplateCreateSchema)
    @blp.alt_response(400, **INVALID_JSON)
    @blp.response(200, TemplateEnvelopeSchema)
    @blp.alt_response(409, schema=ErrorSchema, description="Too many templates")
    @blp.alt_response(401, **UNAUTHORIZED)
    @blp.doc(security=USER_SECURITY)
    def post(self, body):
        """Save a new template"""
        return template_service.create_template(runtime(), current_user_id(), body)


@blp.route("/templates/<int:template_id>")
class Template(MethodView):
    decorators = [user_required]

    @blp.arguments(TemplateFieldsSchema)
    @blp.alt_response(400, **INVALID_JSON)
    @blp.response(200, TemplateEnvelopeSchema)
    @blp.alt_response(404, schema=ErrorSchema, description="Not found or not yours")
    @blp.alt_response(401, **UNAUTHORIZED)
    @blp.doc(security=USER_SECURITY)
    def patch(self, body, template_id):
        """Change the fields given of a template"""
        return template_service.update_template(runtime(), current_user_id(), template_id, body)

    @blp.response(200, DeletedSchema)
    @blp.alt_response(404, schema=ErrorSchema, description="Not found or not yours")
    @blp.alt_response(401, **UNAUTHORIZED)
    @blp.doc(security=USER_SECURITY)
    def delete(self, template_id):
        """Delete a template"""
        return template_service.delete_template(runtime(), current_user_id(), template_id)
