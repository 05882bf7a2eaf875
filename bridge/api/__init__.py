"""HTTP layer: one Blueprint per resource. Views validate, call a service, shape the answer."""
from __future__ import annotations


def register_blueprints(api) -> None:
    from bridge.api import accounts, composer, drafts, health, internal, posts, webhooks

    for module in (health, accounts, posts, drafts, composer, internal, webhooks):
        api.register_blueprint(module.blp)
