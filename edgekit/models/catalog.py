"""The registry's entries for ``edgekit.model_catalog``, and ``python -m edgekit.models.catalog`` to rewrite it."""

from __future__ import annotations

from dataclasses import fields

from edgekit.model_catalog import CATALOG, CatalogEntry, write_catalog
from edgekit.models.registry import list_models


def registry_entries() -> list[CatalogEntry]:
    """The listing's fields as the registry states them now (every model family imported, so torch)."""
    names = [f.name for f in fields(CatalogEntry)]
    return [CatalogEntry(**{name: getattr(info, name) for name in names}) for info in list_models()]


if __name__ == "__main__":  # importing edgekit.models (this module's package) registered every family
    write_catalog(registry_entries())
    print(f"wrote {CATALOG}")
