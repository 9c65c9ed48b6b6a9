"""Parsed schemas of stored form versions: one cache for the whole process (a leaf every area may use).

A published version's XML never changes, so its parsed schema (forms.FormSchema: fields, types,
repeats, files, entity block) is kept by (version id, sha256) — the sha256 because ids repeat
across databases (tests, `carefile transfer`). The ingest hot path asks by id first (`cached`), so
a known version's XML is not even loaded.
"""
from __future__ import annotations

import dataclasses
import threading
from collections import OrderedDict
from typing import Any

from app.models import FormVersion
from forms import FormSchema, parse_xform

CACHE_SIZE = 512

_cache: OrderedDict[tuple[int, str], FormSchema] = OrderedDict()
_lock = threading.Lock()


def cached(version_id: int, sha256: str) -> FormSchema | None:
    """The schema of a version parsed before in this process, or None."""
    with _lock:
        hit = _cache.get((version_id, sha256))
        if hit is not None:
            _cache.move_to_end((version_id, sha256))
        return hit


def schema_of(version: FormVersion) -> FormSchema:
    """The parsed schema of a stored version (parsed once per process)."""
    hit = cached(version.id, version.sha256)
    if hit is not None:
        return hit
    schema = parse_xform(version.xml)
    with _lock:
        _cache[(version.id, version.sha256)] = schema
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return schema


def schema_to_json(schema: FormSchema) -> dict[str, Any]:
    """The schema as stored in FormVersion.schema (JSON)."""
    return dataclasses.asdict(schema)


__all__ = ["cached", "schema_of", "schema_to_json"]
