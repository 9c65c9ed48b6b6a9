"""The pages of the website to open in a realistic county (tests/support/world.py), generated from the URL
map like the access matrix (tests/app/access/test_access_matrix.py): every GET rule of the web blueprint, its URL
variables taken from the world, as every role the route declares (app/routeaccess.py). A new page is
covered without anyone adding it; a page whose variables the world cannot fill fails loudly.

Used by tests/e2e/test_pages_browser.py (every page at 375 and 1280 px in Chromium) and
tests/app/web/test_world_words.py (every Chinese page in words, not codes).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tests.support.world import World

# The world's user for each web role; managers twice: with and without the identifying-details grant
# (names are longer than their *** mask, so pages differ).
ROLE_USERS = {"admin": ["admin"], "coordinator": ["coord"], "manager": ["mgr", "mgr_named"]}



def bindings(world: World, user: str) -> list[dict[str, Any]]:
    """Values for the URL variables of the web pages, from the world. A rule is built with every
    binding that has all its variables (form_id and instance_id go together)."""
    busy = world.child(world.busiest_child)
    dup = world.duplicate_pairs[0][0]
    visit = next(i for i in reversed(world.photo_instances["visit_record"]))
    registration = world.photo_instances["child_registration"][0]
    common = {"project_id": 1, "username": "dolma", "user_id": world.user_ids["mgr_named"],
              "job_id": world.export_jobs.get(user, 0), "xml_form_id": world.draft_form, "ref": "draft",
              "what": "source", "filename": "regions.csv", "name": "visit.png"}
    return [
        {**common, "uid": busy.uuid, "form_id": "visit_record", "instance_id": visit},
        {**common, "uid": dup, "form_id": "child_registration", "instance_id": registration, "name": "home.png"},
    ]


# Downloads of a form's own files: the shipped forms upload none (regions.csv and children.csv are
# made for each user), so these may answer 404 in the world; they are files, not pages, either way.
FILE_ROUTES = {"web.forms_attachment_download", "web.forms_draft_attachment_download"}

# A form's draft pages are for those who may change the form (access.require_form_change): the world's
# forms reach every collector, so its county coordinator gets 403 there; the admin opens them.
FORM_CHANGE_PAGES = {"web.forms_draft", "web.forms_draft_try", "web.forms_draft_attachment_download"}
COUNTY_USERS = {"coord"}

# Variables whose name means different things on different pages.
OVERRIDES = {"web.edit_submission_file": {"filename": "visit.png"}}


@dataclass
class Page:
    endpoint: str
    url: str
    user: str  # a world user name, or "anonymous"
    from_form: str = ""  # the GET form on another page this URL was reached by


def pages(app: Any, world: World) -> list[Page]:
    """Every (page, user) to open: each GET rule of the website, as each role it admits."""
    from app.routeaccess import declared

    out: list[Page] = []
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if not rule.endpoint.startswith("web.") or "GET" not in (rule.methods or ()):
            continue
        spec = declared(app.view_functions[rule.endpoint])
        assert spec is not None, f"{rule.rule} declares no access (app/routeaccess.py)"
        users = ["anonymous"] if spec.public else [u for role in spec.roles for u in ROLE_USERS.get(role, [])]
        if rule.endpoint in FORM_CHANGE_PAGES:
            users = [u for u in users if u not in COUNTY_USERS]
        for user in users:
            urls = []
            for values in bindings(world, user):
                values = {**values, **OVERRIDES.get(rule.endpoint, {})}
                if set(rule.arguments) <= set(values):
                    adapter = app.url_map.bind("localhost")
                    url = adapter.build(rule.endpoint, {k: values[k] for k in rule.arguments}, append_unknown=False)
                    if url not in urls:
                        urls.append(url)
            assert urls, f"no world values for {rule.rule}: add them to bindings()"
            out += [Page(rule.endpoint, url, user) for url in urls]
    return out
