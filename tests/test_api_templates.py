"""Post templates and hashtag groups: the user's own, CRUD on the real MariaDB, hostile bodies
refused with 422 (never a 500), 404 for anyone else's."""
from __future__ import annotations

import pytest
from sqlalchemy import delete

from tests.conftest import auth

P = "/wp-json/aurareels/v1/social"
USER, OTHER = 91, 92


@pytest.fixture(autouse=True)
def empty_tables(rt):
    with rt.engine.begin() as conn:
        for table in (rt.tables.templates, rt.tables.hashtag_groups):
            conn.execute(delete(table))


TEMPLATE = {"name": "Weekly recap", "caption": "This week on the channel 🎬", "hashtags": ["#recap", "#weekly"],
            "platforms": ["tiktok", "instagram"], "options": {"tiktok_source": "PULL_FROM_URL", "nested": {"a": [1]}}}


def test_template_lifecycle(client):
    created = client.post(f"{P}/templates", headers=auth(USER), json=TEMPLATE)
    assert created.status_code == 200, created.get_data(as_text=True)
    template = created.get_json()["template"]
    assert created.get_json()["success"] is True and isinstance(template["id"], int)
    assert {k: template[k] for k in TEMPLATE} == TEMPLATE and template["created_at"]

    listed = client.get(f"{P}/templates", headers=auth(USER)).get_json()
    assert listed["success"] is True and [t["id"] for t in listed["templates"]] == [template["id"]]

    changed = client.patch(f"{P}/templates/{template['id']}", headers=auth(USER),
                           json={"caption": None, "platforms": ["youtube"], "name": "  Monthly recap  "})
    assert changed.status_code == 200
    after = changed.get_json()["template"]
    assert (after["name"], after["caption"], after["platforms"]) == ("Monthly recap", None, ["youtube"])
    assert after["hashtags"] == TEMPLATE["hashtags"] and after["options"] == TEMPLATE["options"]
    unchanged = client.patch(f"{P}/templates/{template['id']}", headers=auth(USER), json={}).get_json()
    assert unchanged["template"] == after

    gone = client.delete(f"{P}/templates/{template['id']}", headers=auth(USER))
    assert gone.status_code == 200 and gone.get_json() == {"success": True, "message": "Template deleted",
                                                           "id": template["id"]}
    assert client.get(f"{P}/templates", headers=auth(USER)).get_json()["templates"] == []
    assert client.delete(f"{P}/templates/{template['id']}", headers=auth(USER)).status_code == 404


def test_templates_of_another_user_are_404_and_not_listed(client):
    theirs = client.post(f"{P}/templates", headers=auth(OTHER), json=TEMPLATE).get_json()["template"]
    assert client.get(f"{P}/templates", headers=auth(USER)).get_json()["templates"] == []
    for answer in (client.patch(f"{P}/templates/{theirs['id']}", headers=auth(USER), json={"name": "mine now"}),
                   client.delete(f"{P}/templates/{theirs['id']}", headers=auth(USER))):
        assert answer.status_code == 404 and answer.get_json()["code"] == "template_not_found"
    assert client.get(f"{P}/templates", headers=auth(OTHER)).get_json()["templates"][0]["name"] == "Weekly recap"
    assert client.get(f"{P}/templates").status_code == 401


@pytest.mark.parametrize("body, field", [
    ({}, "name"),
    ({"name": ""}, "name"),
    ({"name": "   "}, "name"),
    ({"name": "x" * 101}, "name"),
    ({"name": 5}, "name"),
    ({"name": "ok", "caption": "😀" * 20_000}, "caption"),
    ({"name": "ok", "hashtags": ["#a"] * 101}, "hashtags"),
    ({"name": "ok", "hashtags": ["#two words"]}, "hashtags"),
    ({"name": "ok", "hashtags": "#notalist"}, "hashtags"),
    ({"name": "ok", "hashtags": ["#" + "😀" * 149] * 100}, "hashtags"),
    ({"name": "ok", "platforms": ["myspace"]}, "platforms"),
    ({"name": "ok", "platforms": ["tiktok", "tiktok"]}, "platforms"),
    ({"name": "ok", "options": {"big": "x" * 20_000}}, "options"),
    ({"name": "ok", "options": ["not", "an", "object"]}, "options"),
    ({"name": "ok", "options": {"k" * 65: 1}}, "options"),
])
def test_hostile_template_bodies_are_422(client, body, field):
    answer = client.post(f"{P}/templates", headers=auth(USER), json=body)
    assert answer.status_code == 422, answer.get_data(as_text=True)[:300]
    assert answer.get_json()["code"] == "validation_error" and field in answer.get_json()["errors"]


def test_bodies_that_are_not_objects_are_refused(client):
    for raw in (b"[1, 2]", b"\"text\"", b"{not json", b"[" * 5000 + b"]" * 5000):
        answer = client.post(f"{P}/templates", headers={**auth(USER), "Content-Type": "application/json"}, data=raw)
        assert answer.status_code in (400, 422), (raw[:20], answer.status_code)
        assert answer.get_json()["success"] is False


def test_template_count_is_bounded(client, monkeypatch):
    from bridge.services import templates

    monkeypatch.setattr(templates, "MAX_PER_USER", 2)
    for n in range(2):
        assert client.post(f"{P}/templates", headers=auth(USER), json={"name": f"t{n}"}).status_code == 200
    answer = client.post(f"{P}/templates", headers=auth(USER), json={"name": "one too many"})
    assert answer.status_code == 409 and answer.get_json()["code"] == "template_limit_reached"
    assert client.post(f"{P}/templates", headers=auth(OTHER), json={"name": "theirs"}).status_code == 200


# -------------------------------------------------------------------------- hashtag groups
def test_hashtag_group_lifecycle_and_ownership(client):
    created = client.post(f"{P}/hashtag-groups", headers=auth(USER), json={"name": "Food", "hashtags": ["#food", "yum"]})
    assert created.status_code == 200, created.get_data(as_text=True)
    group = created.get_json()["hashtag_group"]
    assert (group["name"], group["hashtags"]) == ("Food", ["#food", "yum"]) and isinstance(group["id"], int)
    assert [g["id"] for g in client.get(f"{P}/hashtag-groups", headers=auth(USER)).get_json()["hashtag_groups"]] == [
        group["id"]]
    assert client.get(f"{P}/hashtag-groups", headers=auth(OTHER)).get_json() == {"success": True, "hashtag_groups": []}

    changed = client.patch(f"{P}/hashtag-groups/{group['id']}", headers=auth(USER), json={"hashtags": ["#brunch"]})
    assert changed.get_json()["hashtag_group"]["hashtags"] == ["#brunch"]
    for answer in (client.patch(f"{P}/hashtag-groups/{group['id']}", headers=auth(OTHER), json={"name": "x"}),
                   client.delete(f"{P}/hashtag-groups/{group['id']}", headers=auth(OTHER))):
        assert answer.status_code == 404 and answer.get_json()["code"] == "hashtag_group_not_found"
    assert client.delete(f"{P}/hashtag-groups/{group['id']}", headers=auth(USER)).get_json()["id"] == group["id"]
    assert client.get(f"{P}/hashtag-groups", headers=auth(USER)).get_json()["hashtag_groups"] == []


@pytest.mark.parametrize("body, field", [
    ({"hashtags": ["#a"]}, "name"),
    ({"name": "No tags"}, "hashtags"),
    ({"name": "Empty", "hashtags": []}, "hashtags"),
    ({"name": "Spaces", "hashtags": ["#a b"]}, "hashtags"),
    ({"name": "Many", "hashtags": [f"#t{n}" for n in range(101)]}, "hashtags"),
    ({"name": "Long", "hashtags": ["#" + "a" * 150]}, "hashtags"),
    ({"name": "Types", "hashtags": [1, 2]}, "hashtags"),
])
def test_hostile_hashtag_group_bodies_are_422(client, body, field):
    answer = client.post(f"{P}/hashtag-groups", headers=auth(USER), json=body)
    assert answer.status_code == 422, answer.get_data(as_text=True)[:300]
    assert field in answer.get_json()["errors"]


@pytest.mark.parametrize("body", [{"name": ""}, {"name": None}, {"hashtags": []}, {"hashtags": ["#a b"]},
                                  {"hashtags": None}])
def test_hostile_hashtag_group_patches_are_422_and_change_nothing(client, body):
    group = client.post(f"{P}/hashtag-groups", headers=auth(USER), json={"name": "ok", "hashtags": ["#ok"]})
    group_id = group.get_json()["hashtag_group"]["id"]
    answer = client.patch(f"{P}/hashtag-groups/{group_id}", headers=auth(USER), json=body)
    assert answer.status_code == 422, answer.get_data(as_text=True)[:300]
    listed = client.get(f"{P}/hashtag-groups", headers=auth(USER)).get_json()["hashtag_groups"]
    assert [(g["name"], g["hashtags"]) for g in listed] == [("ok", ["#ok"])]


def test_the_document_lists_the_new_routes(client):
    paths = client.get("/openapi.json").get_json()["paths"]
    wanted = {("get", "/posts/{post_id}/analytics"), ("post", "/posts/{post_id}/analytics/refresh"),
              ("get", "/analytics/summary"), ("get", "/analytics/best-times"), ("get", "/templates"),
              ("post", "/templates"), ("patch", "/templates/{template_id}"), ("delete", "/templates/{template_id}"),
              ("get", "/hashtag-groups"), ("post", "/hashtag-groups"), ("patch", "/hashtag-groups/{group_id}"),
              ("delete", "/hashtag-groups/{group_id}")}
    missing = {(m, p) for m, p in wanted if m not in paths.get(f"/aurareels/v1/social{p}", {})}
    assert not missing
    for method, path in wanted:
        assert paths[f"/aurareels/v1/social{path}"][method]["security"] == [{"wordpressJwt": []}]
