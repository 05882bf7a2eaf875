"""`GET /health`: database, Redis, and (once running) workers and scheduler."""
from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields

from bridge.api.deps import runtime
from bridge.services.health import check_health

blp = Blueprint("health", __name__, url_prefix="/aurareels/v1/social", description="Health")


class HealthSchema(Schema):
    status = fields.String(required=True, metadata={"enum": ["ok", "degraded"]})
    checks = fields.Dict(keys=fields.String(), values=fields.Dict(), required=True)


@blp.route("/health")
class Health(MethodView):
    @blp.response(200, HealthSchema)
    @blp.alt_response(503, schema=HealthSchema, description="A dependency is down")
    def get(self):
        """Health of the bridge and what it depends on"""
        report = check_health(runtime())
        return report, (200 if report["status"] == "ok" else 503)
