"""Headless Chromium for the browser tests: the system's binary, driven by Playwright (no browser download).

    from tests.e2e.chromium import SHOTS, launch, needs_chromium
    pytestmark = needs_chromium

    @pytest.fixture(scope="module")
    def browser():
        with launch() as chromium:
            yield chromium

The network is closed here: the flags keep Chromium from calling home (and failing at it), and the
pages under test load nothing from other hosts anyway. CAREFILE_CHROMIUM names another binary.
"""
from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("CAREFILE_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--no-first-run",
                 "--disable-sync"]
SHOTS = Path(__file__).resolve().parents[1] / "artifacts" / "screenshots"

needs_chromium = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"no Chromium at {CHROMIUM} "
                                    "(apt-get install chromium; scripts/test.sh does it)")


@contextmanager
def launch() -> Iterator[Any]:
    """A headless Chromium (Playwright's Browser), closed at the end."""
    playwright_api = pytest.importorskip("playwright.sync_api",
                                         reason="pip install -e '.[test]' installs playwright")
    with playwright_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()
