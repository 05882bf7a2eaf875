"""The n8n workflow files under n8n/, and the one edit a deployment (or a test) makes to them."""
from __future__ import annotations

import copy
import json
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
N8N_DIR = ROOT / "n8n"
SCHEDULER = N8N_DIR / "social_media_scheduler.json"
PUBLISHER = N8N_DIR / "social_media_publisher.json"
CREDENTIALS = N8N_DIR / "credentials.example.json"
WORKFLOWS = (SCHEDULER, PUBLISHER)

DEFAULT_BRIDGE_URL = "http://127.0.0.1:8080"
CONFIG_NODE = "Config"
BRIDGE_URL_FIELD = "bridge_url"
WEBHOOK_TYPE = "n8n-nodes-base.webhook"


def load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def config_assignments(workflow: dict) -> dict[str, dict]:
    """The Config node's values by name (each a Set-node assignment)."""
    node = next(n for n in workflow["nodes"] if n["name"] == CONFIG_NODE)
    return {a["name"]: a for a in node["parameters"]["assignments"]["assignments"]}


def with_config(workflow: dict, **values) -> dict:
    """A copy of `workflow` with Config values replaced, e.g. bridge_url=... (the one value a
    deployment changes when the bridge is not at http://127.0.0.1:8080)."""
    out = copy.deepcopy(workflow)
    assignments = config_assignments(out)
    for name, value in values.items():
        if name not in assignments:
            raise KeyError(f"Config has no value named {name}")
        assignments[name]["value"] = value
    return out


def webhook_node(workflow: dict) -> dict:
    return next(n for n in workflow["nodes"] if n["type"] == WEBHOOK_TYPE)


def with_webhook_path(workflow: dict, path: str, *, workflow_id: str, name: str) -> dict:
    """A copy under another id, name and webhook path (tests import a second copy this way)."""
    out = copy.deepcopy(workflow)
    out["id"], out["name"] = workflow_id, name
    node = webhook_node(out)
    node["parameters"]["path"] = path
    node["webhookId"] = str(uuid.uuid5(uuid.NAMESPACE_URL, f"aurareels-test:{workflow_id}:{path}"))
    return out
