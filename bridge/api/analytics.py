"""Analytics: a post's figures and history, a refresh now, the user's summary and best times."""
from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint

from bridge.api.deps import UNAUTHORIZED, USER_SECURITY, current_user_id, runtime, user_required
from bridge.errors import ValidationFailed
from bridge.schemas.analytics import (
    BestTimesQuerySchema,
    BestTimesSchema,
    PostAnalyticsSchema,
    SummaryQuerySchema,
    SummarySchema,
)
from bridge.schemas.common import ErrorSchema
from bridge.services import analytics as analytics_service
from bridge.services.analytics_summary import summary
from bridge.services.best_times import best_times
from bridge.timefmt import parse_request_time

blp = Blueprint("analytics", __name__, url_prefix="/aurareels/v1/social", description="Analytics")

RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}}


def _time(raw: str | None, field: str):
    if raw is None:
        return None
    try:
        return parse_request_time(raw, runtime().settings.tz)
    except ValueError as exc:
        raise ValidationFailed(str(exc), code="invalid_datetime", errors={field: [str(exc)]}) from None


@blp.route("/posts/<int:post_id>/analytics")
class PostAnalytics(MethodView):
    decorators = [user_required]

    @blp.response(200, PostAnalyticsSchema)
    @blp.alt_response(404, schema=ErrorSchema, description="Not found or not yours")
    @blp.alt_response(401, **UNAUTHORIZED)
    @blp.doc(security=USER_SECURITY)
    def get(self, post_id):
        """A post's latest metrics (null before the first sync) and their history"""
        return analytics_service.post_analytics(runtime(), current_user_id(), post_id)


@blp.route("/posts/<int:post_id>/analytics/refresh")
class RefreshPostAnalytics(MethodView):
    decorators = [user_required]

    @blp.response(200, PostAnalyticsSchema)
    @blp.alt_response(404, schema=ErrorSchema, description="Not found or not yours")
    @blp.alt_response(409, schema=ErrorSchema, description="Not published, or the account must be connected again")
    @blp.alt_response(429, schema=ErrorSchema, headers=RETRY_AFTER,
                      description="Fetched less than a minute ago, or the platform limits requests")
    @blp.alt_response(503, schema=ErrorSchema, headers=RETRY_AFTER, description="The platform did not answer")
    @blp.alt_response(401, **UNAUTHORIZED)
    @blp.doc(security=USER_SECURITY)
    def post(self, post_id):
        """Fetch a published post's metrics from its platform now (at most once a minute)"""
        return analytics_service.refresh(runtime(), current_user_id(), post_id)


@blp.route("/analytics/summary")
class Summary(MethodView):
    decorators = [user_required]

    @blp.arguments(SummaryQuerySchema, location="query")
    @blp.response(200, SummarySchema)
    @blp.alt_response(404, schema=ErrorSchema, description="Account not found or not yours")
    @blp.alt_response(401, **UNAUTHORIZED)
    @blp.doc(security=USER_SECURITY)
    def get(self, query):
        """Totals and engagement per platform and account of the posts published in a window, and the top 10"""
        return summary(runtime(), current_user_id(), start=_time(query.get("from_"), "from"),
                       end=_time(query.get("to"), "to"), platform=query.get("platform"),
                       account_id=query.get("account_id"))


@blp.route("/analytics/best-times")
class BestTimes(MethodView):
    decorators = [user_required]

    @blp.arguments(BestTimesQuerySchema, location="query")
    @blp.response(200, BestTimesSchema)
    @blp.alt_response(404, schema=ErrorSchema, description="Account not found or not yours")
    @blp.alt_response(401, **UNAUTHORIZED)
    @blp.doc(security=USER_SECURITY)
    def get(self, query):
        """Up to 5 weekday/hour slots (site's zone) learned from the user's own posts, else general defaults"""
        return best_times(runtime(), current_user_id(), platform=query.get("platform"),
                          account_id=query.get("account_id"))
