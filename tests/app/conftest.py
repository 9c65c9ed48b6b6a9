from __future__ import annotations

from collections.abc import Callable
from io import BytesIO
from typing import Any

import pytest

from tests.support.digest_client import DigestClient
from tests.support.sample_forms import household_md, household_xml

PASSWORD = "correct horse"


@pytest.fixture
def make_user(rt: Any) -> Callable[..., Any]:
    from app.services.identity import users

    def make(name: str, role: str = "collector", regions: list[str] | None = None) -> Any:
        with rt.db.write() as s:
            u = users.create_user(s, project_id=1, username=name, role=role, password=PASSWORD,
                                  realm=rt.config["DIGEST_REALM"], regions=regions)
            s.expunge(u)
            return u

    return make


@pytest.fixture
def publish(rt: Any) -> Callable[..., Any]:
    from app.services import forms

    def do(md: str, filename: str = "form.md") -> Any:
        with rt.db.write() as s:
            res = forms.publish_form(s, rt.store, project_id=1, data=md.encode(), filename=filename, validate=False)
            return res

    return do


@pytest.fixture
def household(publish: Callable[..., Any]) -> Any:
    return publish(household_md("1"))


@pytest.fixture
def collector(make_user: Callable[..., Any]) -> Any:
    return make_user("tashi", "collector", ["540102"])


@pytest.fixture
def collect(app: Any, collector: Any) -> DigestClient:
    return DigestClient(app.test_client(), "tashi", PASSWORD)


def submission_body(xml: bytes, files: dict[str, bytes] | None = None, extra: dict[str, Any] | None = None
                    ) -> Callable[[], dict[str, Any]]:
    """A multipart body as Collect builds it (a factory: a body can be sent only once)."""
    def build() -> dict[str, Any]:
        data: dict[str, Any] = {"xml_submission_file": (BytesIO(xml), "submission.xml", "text/xml")}
        for name, content in (files or {}).items():
            data[name] = (BytesIO(content), name, "image/jpeg")
        data.update(extra or {})
        return data
    return build


@pytest.fixture
def submit(collect: DigestClient, household: Any) -> Callable[..., Any]:
    def do(xml: bytes | None = None, files: dict[str, bytes] | None = None, uri: str = "/v1/projects/1/submission",
           **kw: Any) -> Any:
        body = submission_body(xml if xml is not None else household_xml(), files, kw.pop("extra", None))
        return collect.post(uri, data=body, content_type="multipart/form-data", **kw)

    return do


@pytest.fixture
def login(app: Any, make_user: Any) -> Any:
    """login(name, role, regions) → a JSON API client (tests/support/api_client.py) signed in as a new user."""
    from tests.support.api_client import ApiClient

    def do(name: str, role: str, regions: list[str] | None = None) -> Any:
        make_user(name, role, regions)
        return ApiClient(app, name)
    return do
