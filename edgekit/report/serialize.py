"""Results as JSON: dataclasses, tuples, paths and numpy scalars as JSON values; every result says its kind.

A result dataclass declares ``KIND`` and ``VERSION`` (class constants, not fields); its JSON object starts with
``"kind"`` and ``"version"`` so that ``edgekit report`` renders a file by what it says it is, not by its keys.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any


def result_kind(obj: Any) -> tuple[str, int] | None:
    """``(kind, version)`` a result dataclass (or its class) declares, None for anything else."""
    kind = getattr(obj, "KIND", None)
    return (kind, obj.VERSION) if dataclasses.is_dataclass(obj) and isinstance(kind, str) else None


def to_jsonable(obj: Any) -> Any:
    """Dataclasses, tuples, paths and numpy scalars as JSON-ready values; non-finite floats as strings. A result
    dataclass (one with ``KIND``, at any depth) gets ``"kind"`` and ``"version"`` before its fields."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        fields = {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
        kind = result_kind(obj)
        return fields if kind is None else {"kind": kind[0], "version": kind[1], **fields}
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item") and callable(obj.item):  # numpy scalar
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return "inf" if obj > 0 else ("-inf" if obj < 0 else "nan")
    return obj


def to_json(obj: Any) -> str:
    """Serialise a result dataclass as stable, indented JSON (``kind`` and ``version``, then the fields in
    order) ending in a newline."""
    return json.dumps(to_jsonable(obj), indent=2) + "\n"
