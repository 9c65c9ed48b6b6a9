"""The case-work world of tests/app/children: the registration and follow-up forms of casework_helpers,
collectors of two counties and of one village, a province coordinator and a county manager."""
from __future__ import annotations

from typing import Any

import pytest

from tests.app.children.casework_helpers import FOLLOW_MD, REG_MD


@pytest.fixture
def setup(app: Any, make_user: Any, publish: Any) -> Any:
    publish(REG_MD, "reg.md")
    publish(FOLLOW_MD, "follow.md")
    make_user("dolma", "collector", ["540102"])
    make_user("pema", "collector", ["540121"])
    make_user("tenzin", "collector", ["540102002002"])
    make_user("coord", "coordinator", ["54"])
    make_user("mgr", "manager", ["540102"])
    return app
