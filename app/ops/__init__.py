"""Operations: /healthz, /readyz, /metrics, request ids and logs (views.py), `carefile serve` helpers
(serving.py), log formats (logs.py).

Importing this package must not import prometheus_client: `carefile serve` sets
PROMETHEUS_MULTIPROC_DIR (serving.py) before the first import, which fixes the client's mode.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask


def init_app(app: Flask) -> None:
    from .views import init_app as install

    install(app)
