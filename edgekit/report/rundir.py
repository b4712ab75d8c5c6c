"""A run directory (``edgekit report DIR``): every result JSON in it read back and rendered into one page."""

from __future__ import annotations

import dataclasses
import html
import json
from pathlib import Path
from typing import Any

from edgekit.analysis.profile import compare_profile
from edgekit.errors import OutputError
from edgekit.fileio import NotRegularFileError, ensure_writable_dir, open_regular_file, staged_files
from edgekit.report.analysis import analysis_html, analysis_markdown
from edgekit.report.bench import _bench_html_body, _latency_points, bench_markdown, latency_chart_html
from edgekit.report.charts import bar_chart_svg
from edgekit.report.export import _parity_limits_html, export_markdown, parity_limits_line, parity_rows
from edgekit.report.guidelines import guidelines_html, guidelines_markdown
from edgekit.report.tables import html_table, markdown_table, page


class _Record(dict):
    """A JSON object read back with attribute access, so the renderers above take it like the dataclass."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name, name=name, obj=self) from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value


def _records(value: Any) -> Any:
    if isinstance(value, dict):
        return _Record({k: _records(v) for k, v in value.items()})
    if isinstance(value, list):
        return [_records(v) for v in value]
    return value


@dataclasses.dataclass
class RunDirectory:
    """Everything ``collect_run_dir`` recognised in a directory, by kind (JSON read back as records)."""

    path: str
    exports: list = dataclasses.field(default_factory=list)
    parity: list = dataclasses.field(default_factory=list)
    benches: list = dataclasses.field(default_factory=list)
    analyses: list = dataclasses.field(default_factory=list)
    guidelines: list = dataclasses.field(default_factory=list)
    layer_errors: list = dataclasses.field(default_factory=list)  # (title, [{name, ...metrics}])
    skipped: list = dataclasses.field(default_factory=list)  # files not recognised, with why


#: The result kinds this edgekit knows (the ``KIND`` of each result dataclass), the newest ``VERSION`` of each
#: it reads, and the section that renders it here (None: a result this report has no section for).
KINDS: dict[str, tuple[int, str | None]] = {
    "export": (1, "export"), "parity": (1, "parity"), "bench": (1, "bench"), "analysis": (1, "analysis"),
    "guidelines": (1, "guidelines"), "per_layer": (1, "layer_errors"), "eval": (1, None), "device": (1, None),
    "model": (1, None),
}


def classify_result(data: Any) -> str | None:
    """Which section renders a result JSON: ``export``, ``parity``, ``bench``, ``analysis``, ``guidelines``,
    ``layer_errors``, or None (not a result this report renders; ``collect_run_dir`` lists why)."""
    return _classify(data)[0]


def _classify(data: Any) -> tuple[str | None, str | None]:
    """``(section, None)`` or ``(None, why not)``. By the ``kind`` and ``version`` a result carries; a JSON
    object without a ``kind`` (written before results had one) by its keys."""
    if not isinstance(data, dict):
        return None, "not an edgekit result"
    kind, version = data.get("kind"), data.get("version", 1)
    if not isinstance(kind, str):
        section = _section_by_keys(data)
        return section, None if section else "not an edgekit result"
    if kind not in KINDS:
        return None, f"a result of kind {kind!r}, which this edgekit does not know (known: {', '.join(KINDS)})"
    newest, section = KINDS[kind]
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        return None, f"{kind} result with version {json.dumps(version)}, not a positive whole number"
    if version > newest:
        return None, f"{kind} result version {version}, newer than this edgekit reads ({newest}); upgrade edgekit"
    if section is None:
        return None, f"{kind} result; `edgekit report` has no section for it"
    return section, None


def _section_by_keys(data: dict) -> str | None:
    """Results written before they carried a ``kind``, recognised by their fields."""
    if "runs" in data and "model_file" in data:
        return "bench"
    if "format" in data and "op_histogram" in data:
        return "export"
    if "outputs" in data and "passed" in data:
        return "parity"
    if isinstance(data.get("layer_errors"), list):
        return "layer_errors"
    layers = data.get("layers")  # edgekit.per_layer's PerLayerReport: per-tensor error of an int8 model
    if isinstance(layers, list) and layers and isinstance(layers[0], dict) and "sqnr_db" in layers[0]:
        return "layer_errors"
    return None


def _error_rows(item) -> list:
    """The per-layer rows of a layer-error record, each with a ``name``."""
    rows = item.get("layer_errors") or item.get("layers") or []
    return [dict(r, name=r.get("name") or r.get("node") or r.get("tensor") or str(i)) for i, r in enumerate(rows)]


# One renderer per kind and format, shared by the report and by the check in ``collect_run_dir`` that each
# file renders, so a file of the wrong shape is listed as skipped instead of ending the report in a traceback.


def _export_markdown_section(result) -> list[str]:
    return [f"## Export: {result._file}", "", export_markdown(result).split("\n", 1)[1], ""]


def _parity_markdown_section(report) -> list[str]:
    return [f"## Parity: {report._file}", "", markdown_table(*parity_rows(report)), "", parity_limits_line(report), "",
            "PASS" if report.passed else "FAIL: " + "; ".join(report.failures), ""]


def _bench_markdown_section(report) -> list[str]:
    return [bench_markdown(report).replace("# Benchmark", f"## Benchmark ({report._file})", 1)]


def _layer_errors_markdown_section(item) -> list[str]:
    metric_rows = [[r.get("name"), *[r.get(k) for k in ("sqnr_db", "max_abs", "cosine")]] for r in _error_rows(item)]
    return [f"## Per-layer error: {item.get('_file', '')}", "",
            markdown_table(["layer", "SQNR dB", "max abs", "cosine"], metric_rows), ""]


def _layer_error_chart(item) -> str:
    rows = _error_rows(item)
    metric = next((m for m in ("sqnr_db", "max_abs", "mean_abs", "cosine") if rows and m in rows[0]), None)
    if metric is None:
        return "<p>(no per-layer metric)</p>"
    return (f"<p>{html.escape(metric)} per layer</p>"
            + bar_chart_svg([(str(r.get("name", i)), float(r[metric])) for i, r in enumerate(rows)
                             if isinstance(r.get(metric), (int, float))]))


def _export_html_section(result) -> str:
    parts = [f"<h3>{html.escape(result.model)} &mdash; {html.escape(result.format)} "
             f"{html.escape(result.precision)}</h3><p>{html.escape(result._file)} &middot; "
             f"{result.file_size / 1e6:.2f} MB</p>",
             bar_chart_svg([(k, int(v)) for k, v in result.op_histogram.items()])]
    if result.get("parity"):
        parts.append(html_table(*parity_rows(result.parity)) + _parity_limits_html(result.parity))
    return "".join(parts)


def _parity_html_section(report) -> str:
    return (f"<h3>Parity: {html.escape(report._file)}</h3>" + html_table(*parity_rows(report))
            + _parity_limits_html(report))


def _bench_html_section(report) -> str:
    return (f"<h3>{html.escape(report._file)}: {html.escape(Path(str(report.model_file)).name)}</h3>"
            + _bench_html_body(report, "h4"))


def _analysis_html_section(analysis) -> str:
    return analysis_html(analysis).replace("<h2>", "<h3>").replace("</h2>", "</h3>")


_RENDERERS = {
    "export": (_export_markdown_section, _export_html_section),
    "parity": (_parity_markdown_section, _parity_html_section),
    "bench": (_bench_markdown_section, _bench_html_section, _latency_points),
    "analysis": (analysis_markdown, _analysis_html_section),
    "guidelines": (guidelines_markdown, guidelines_html),
    "layer_errors": (_layer_errors_markdown_section, _layer_error_chart),
}
_WRITTEN_BY = {"export": "edgekit export", "parity": "edgekit check", "bench": "edgekit bench",
               "analysis": "edgekit analyze", "guidelines": "edgekit guidelines",
               "layer_errors": "edgekit check --per-layer"}
_KIND_NAMES = {"layer_errors": "per-layer error"}


def _read_json(file: Path) -> Any:
    """The JSON value in ``file``. Raises ValueError whose message says why when ``file`` is not a regular
    file of JSON text (a named pipe would block the read, so it is never opened)."""
    try:
        with open_regular_file(file) as handle:
            raw = handle.read()
    except NotRegularFileError as exc:
        raise ValueError(f"a {exc.kind}, not a file") from None
    except OSError as exc:
        raise ValueError(f"cannot be read ({exc.strerror or exc.__class__.__name__})") from None
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    except UnicodeDecodeError:
        raise ValueError("not JSON (not UTF-8 text)") from None
    except RecursionError:
        raise ValueError("JSON nested too deeply to read") from None


def _what_is_wrong(exc: Exception) -> str:
    """What a renderer's exception says about the record it was given, in a user's words."""
    if isinstance(exc, AttributeError) and isinstance(exc.obj, _Record):
        return f"field {exc.name!r} is missing"
    if isinstance(exc, KeyError) and len(exc.args) == 1:
        return f"field {exc.args[0]!r} is missing"
    if isinstance(exc, AttributeError) and exc.name is not None:
        value = "null" if exc.obj is None else f"a {_json_type(exc.obj)}"
        wanted = "an object" if hasattr(dict, exc.name) else f"an object with field {exc.name!r}"
        return f"{value} where {wanted} belongs"
    first_line = str(exc).splitlines()[0] if str(exc) else ""
    return f"a field of the wrong type or value ({type(exc).__name__}: {first_line})"


def _json_type(value: Any) -> str:
    return {bool: "boolean", int: "number", float: "number", str: "string", list: "list"}.get(type(value), "object")


def _render_problem(kind: str, record) -> str | None:
    """Why ``record`` (of ``kind``) cannot be rendered, or None when every renderer of its kind takes it."""
    try:
        for render in _RENDERERS[kind]:
            render(record)
    except Exception as exc:  # any renderer failure means this file is not the shape its kind has
        what = f"{_KIND_NAMES.get(kind, kind)} result, but {_what_is_wrong(exc)}"
        return f"{what}; rerun `{_WRITTEN_BY[kind]}` to write it again"
    return None


def collect_run_dir(path: str | Path) -> RunDirectory:
    """Read every ``*.json`` under ``path`` (recursively) and sort it by kind. A file that is not readable
    JSON, not an edgekit result, or a result missing fields or with fields of the wrong type is listed in
    ``skipped`` with the reason; nothing raises for a bad file. Raises ``OutputError`` when ``path`` is not
    a directory."""
    root = Path(path)
    if not root.is_dir():
        raise OutputError(f"{root} is not a directory; pass the --output directory of an edgekit command")
    found = RunDirectory(path=str(root.resolve()))
    by_kind = {"analysis": found.analyses, "guidelines": found.guidelines, "bench": found.benches,
               "export": found.exports, "parity": found.parity, "layer_errors": found.layer_errors}
    for file in sorted(root.rglob("*.json")):
        name = str(file.relative_to(root))
        try:
            data = _read_json(file)
            record = _records(data)
        except (ValueError, RecursionError) as exc:
            reason = exc if isinstance(exc, ValueError) else "JSON nested too deeply to read"
            found.skipped.append(f"{name}: {reason}; rerun the command that wrote it, or remove it")
            continue
        kind, why_not = _classify(data)
        if kind is None:
            found.skipped.append(f"{name}: {why_not}")
            continue
        record["_file"] = name
        problem = _render_problem(kind, record)
        if problem is not None:
            found.skipped.append(f"{name}: {problem}")
            continue
        by_kind[kind].append(record)
        nested = record.get("parity") if kind == "export" else None
        if isinstance(nested, dict) and isinstance(nested.get("layer_errors"), list):
            nested["_file"] = name
            problem = _render_problem("layer_errors", nested)
            if problem is None:
                found.layer_errors.append(nested)
            else:
                found.skipped.append(f"{name}: its per-layer errors: {problem}")
    return found


def _attach_profiles(found: RunDirectory) -> None:
    """Give analyses of a file the per-layer times of a profiled bench run of the same file name."""
    for analysis in found.analyses:
        if analysis.get("profile") or analysis.source_kind == "pytorch":
            continue
        for bench in found.benches:
            runs = [r for r in bench.runs if Path(str(r.model_file)).name == Path(str(analysis.source)).name
                    and (r.get("op_profile") or r.get("op_type_summary"))]
            if runs:
                run = runs[0]
                where = f"{Path(str(run.model_file)).name} on {run.device.target}"
                try:
                    analysis["profile"] = compare_profile(analysis, run.get("op_profile") or [],
                                                          run.get("op_type_summary") or [], where)
                except Exception as exc:  # op profile rows of the wrong shape: the bench renders without them
                    found.skipped.append(f"{bench._file}: op profile not compared with {analysis._file}: "
                                         f"{_what_is_wrong(exc)}")
                    continue
                break


def run_dir_markdown(found: RunDirectory) -> str:
    """Everything in a run directory as one Markdown document."""
    lines = [f"# edgekit report: {found.path}", ""]
    for result in found.exports:
        lines += _export_markdown_section(result)
    for report in found.parity:
        lines += _parity_markdown_section(report)
    for report in found.benches:
        lines += _bench_markdown_section(report)
    for analysis in found.analyses:
        lines += [analysis_markdown(analysis)]
    for report in found.guidelines:
        lines += [guidelines_markdown(report)]
    for item in found.layer_errors:
        lines += _layer_errors_markdown_section(item)
    if found.skipped:
        lines += ["## Files not included", ""] + [f"- {s}" for s in found.skipped] + [""]
    return "\n".join(lines) + "\n"


def run_dir_html(found: RunDirectory) -> str:
    """Everything in a run directory as one self-contained HTML page (inline SVG, no network): exports,
    parity, benchmarks (latency per target and threads, time per op type), analyses (shares, findings,
    MAC vs measured time per layer), guideline tables and per-layer int8 error when present."""
    _attach_profiles(found)
    body = [f"<h1>edgekit report</h1><p>{html.escape(found.path)}</p>"]
    toc = []
    if found.exports or found.parity:
        toc.append("exports and parity")
        body.append('<h2 id="exports">Exports and parity</h2>')
        body += [_export_html_section(result) for result in found.exports]
        body += [_parity_html_section(report) for report in found.parity]
    if found.benches:
        toc.append("benchmarks")
        body.append('<h2 id="benchmarks">Benchmarks</h2>')
        points = [point for report in found.benches for point in _latency_points(report)]
        chart = latency_chart_html(points, several_models=len({model for model, *_ in points}) > 1)
        body.append(chart and "<h3>Latency per target and thread count (medians)</h3>" + chart)
        body += [_bench_html_section(report) for report in found.benches]
    if found.analyses:
        toc.append("analysis")
        body.append('<h2 id="analysis">Analysis: FLOPs, memory access and the ShuffleNetV2 guidelines</h2>')
        body += [_analysis_html_section(a) for a in found.analyses]
    if found.guidelines:
        toc.append("guidelines")
        body += [guidelines_html(g) for g in found.guidelines]
    if found.layer_errors:
        toc.append("per-layer error")
        body.append('<h2 id="layer-errors">Per-layer error (int8)</h2>')
        body += [_layer_error_chart(item) for item in found.layer_errors]
    if found.skipped:
        body.append("<h2>Files not included</h2><ul>"
                    + "".join(f"<li>{html.escape(s)}</li>" for s in found.skipped) + "</ul>")
    if not toc:
        body.append("<p>No edgekit results (export, parity, bench, analysis, guidelines JSON) in this directory.</p>")
    body.insert(1, "<p>Sections: " + html.escape(", ".join(toc) or "none") + "</p>")
    return page(f"edgekit report: {found.path}", "\n".join(body)).replace(
        "table{border-collapse:collapse}", "table{border-collapse:collapse;margin:0.5em 0;font-size:13px}")


def write_run_report(path: str | Path, output: str | Path | None = None) -> dict[str, Any]:
    """Render everything in run directory ``path`` to ``report.html`` and ``report.md`` (in ``output``,
    default ``path``), each written atomically. Out: ``{"html", "markdown"}`` -> path, and ``"skipped"``:
    one line per file left out of the report, with why. Raises ``OutputError``."""
    found = collect_run_dir(path)
    out = Path(output) if output is not None else Path(path)
    try:
        ensure_writable_dir(out)
        paths = {"html": out / "report.html", "markdown": out / "report.md"}
        with staged_files() as staged:  # both appear whole, or neither changes
            staged.write_text(paths["html"], run_dir_html(found))
            staged.write_text(paths["markdown"], run_dir_markdown(found))
            staged.commit()
    except OSError as exc:
        raise OutputError(f"cannot write the report to {out}: {exc.strerror or exc}") from exc
    paths["skipped"] = list(found.skipped)
    return paths
