"""The registry's listing without PyTorch: what ``edgekit models`` prints, read from ``model_catalog.json``.

Every registered model's builder lives in a module that imports torch (1.8 s here), while the listing is
metadata the registrations already state as literals. The catalog holds those fields for every model, so the
table prints in the time the CLI takes to start; ``tests/models/test_zoo_registry.py`` fails when it no
longer matches the registry, and ``python -m edgekit.models.catalog`` writes it again. ``edgekit models
--json`` still reads the registry itself (it includes each registration's whole metadata).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

CATALOG = Path(__file__).with_name("model_catalog.json")


@dataclass(frozen=True)
class CatalogEntry:
    """One registered model as the listing shows it; ``edgekit.models.ModelInfo`` adds its whole metadata."""

    name: str
    family: str
    width: float | None
    params: int
    macs: int
    input_shape: tuple[int, ...]
    description: str
    pretrained_url: str | None
    task: str = "classification"
    pure_cnn: bool | None = None


def read_catalog(path: Path = CATALOG) -> list[CatalogEntry] | None:
    """The catalog's entries, or None when the file is missing or not a catalog (the caller then asks the
    registry)."""
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
        return [CatalogEntry(**{**row, "input_shape": tuple(row["input_shape"])}) for row in rows]
    except (OSError, ValueError, TypeError, KeyError):
        return None


def write_catalog(entries: list[CatalogEntry], path: Path = CATALOG) -> None:
    path.write_text(json.dumps([asdict(e) for e in entries], indent=1) + "\n", encoding="utf-8")
