"""Versions of every tool an export used, for the export report."""

from __future__ import annotations

import platform
from importlib import metadata


def tool_versions(*distributions: str) -> dict[str, str]:
    """Installed versions of edgekit, Python and the named distributions ('not installed' when absent)."""
    names = ("edgekit", "numpy", *distributions)
    versions = {"python": platform.python_version()}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions
