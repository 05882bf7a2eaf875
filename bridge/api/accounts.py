"""Accounts: list, connect, callback, refresh, disconnect, quota."""
from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint

from bridge.api.deps import USER_SECURITY, current_user_id, runtime, user_required
from bridge.schemas.accounts import AccountListSchema, AccountQuerySchema
from bridge.schemas.common import ErrorSchema
from bridge.services import accounts as account_service

blp = Blueprint("accounts", __name__, url_prefix="/aurareels/v1/social", description="Connected social accounts")


@blp.route("/accounts")
class Accounts(MethodView):
    decorators = [user_required]

    @blp.arguments(AccountQuerySchema, location="query")
    @blp.response(200, AccountListSchema)
    @blp.alt_response(401, schema=ErrorSchema, description="Missing or invalid WordPress token")
    @blp.doc(security=USER_SECURITY)
    def get(self, query):
        """Connected accounts of the signed-in user"""
        accounts = account_service.list_accounts(runtime(), current_user_id(), query.get("platform"))
        return {"success": True, "accounts": accounts}
