"""The model registry listing (``edgekit models``)."""

from __future__ import annotations

from typing import Any

from edgekit.report.tables import table


def models_rows(infos) -> tuple[list[str], list[list[Any]]]:
    headers = ["model", "family", "params", "MMACs", "input"]
    rows = [
        [i.name, i.family, f"{i.params:,}", round(i.macs / 1e6, 1), "x".join(str(d) for d in i.input_shape)]
        for i in infos
    ]
    return headers, rows


def render_models(infos) -> str:
    return table(*models_rows(infos))
