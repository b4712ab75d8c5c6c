"""The one renderer of edgekit's results: JSON for machines, terminal tables, Markdown and HTML for people.

Results are plain dataclasses; nothing else in edgekit formats them. One module per concern: ``serialize``
(JSON), ``tables`` and ``charts`` (the building blocks), one module per result (``export`` with parity,
``bench`` with devices, ``analysis``, ``guidelines``, ``per_layer``, ``accuracy``, ``models``) and ``rundir``
(a whole run directory read back and rendered). Every public name is importable from ``edgekit.report``.
"""

from __future__ import annotations

from edgekit.report.accuracy import confusion_rows, eval_rows, render_eval
from edgekit.report.analysis import (
    analysis_html,
    analysis_kind_rows,
    analysis_layer_rows,
    analysis_markdown,
    analysis_profile_rows,
    render_analysis,
)
from edgekit.report.bench import (
    NOISY_MIN_RUNS,
    NOISY_SPREAD,
    bench_device_rows,
    bench_html,
    bench_markdown,
    bench_rows,
    devices_rows,
    is_noisy,
    latency_chart_html,
    latency_noise,
    latency_spread,
    render_bench,
    render_devices,
)
from edgekit.report.charts import bar_chart_svg, grouped_bar_svg, line_chart_svg, scatter_svg
from edgekit.report.export import (
    export_html,
    export_markdown,
    parity_limits_line,
    parity_rows,
    render_export,
    render_parity,
)
from edgekit.report.guidelines import guideline_table_rows, guidelines_html, guidelines_markdown, render_guidelines
from edgekit.report.models import models_rows, render_models
from edgekit.report.per_layer import per_layer_html, per_layer_rows, render_per_layer
from edgekit.report.rundir import (
    RunDirectory,
    classify_result,
    collect_run_dir,
    run_dir_html,
    run_dir_markdown,
    write_run_report,
)
from edgekit.report.serialize import to_json, to_jsonable
from edgekit.report.tables import html_table, markdown_table, page, table

__all__ = [
    "NOISY_MIN_RUNS", "NOISY_SPREAD", "RunDirectory", "analysis_html", "analysis_kind_rows", "analysis_layer_rows",
    "analysis_markdown", "analysis_profile_rows", "bar_chart_svg", "bench_device_rows", "bench_html",
    "bench_markdown", "bench_rows", "classify_result", "collect_run_dir", "confusion_rows", "devices_rows",
    "eval_rows", "export_html", "export_markdown", "grouped_bar_svg", "guideline_table_rows", "guidelines_html",
    "guidelines_markdown", "html_table", "is_noisy", "latency_chart_html", "latency_noise", "latency_spread",
    "line_chart_svg", "markdown_table", "models_rows", "page", "parity_limits_line", "parity_rows", "per_layer_html",
    "per_layer_rows", "render_analysis", "render_bench", "render_devices", "render_eval", "render_export",
    "render_guidelines", "render_models", "render_parity", "render_per_layer", "run_dir_html", "run_dir_markdown",
    "scatter_svg", "table", "to_json", "to_jsonable", "write_run_report",
]
