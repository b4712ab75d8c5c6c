"""An export (``edgekit export``) and its parity proof (``edgekit check``): terminal, Markdown and HTML."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from edgekit.check import KERNEL_LOSS_DB, KERNEL_MIN_COSINE, NOISE_FACTOR, REGRESSION_DB
from edgekit.report.charts import bar_chart_svg
from edgekit.report.tables import _cell, html_table, markdown_table, page, table


def parity_rows(report) -> tuple[list[str], list[list[Any]]]:
    """One row per output, each followed by a ``pass if`` row with the limit of every metric that is gated
    (as ``edgekit.check.judge`` applies ``report.thresholds``); a metric without a limit is not gated."""
    headers = ["output", "max abs", "mean abs", "cosine", "SQNR dB", "top-1", "top-5"]
    own = any(getattr(o, "reference_error", None) is not None for o in report.outputs)
    if own:  # fp32 against PyTorch in float64: how far PyTorch's own fp32 run is from it
        headers.append("PyTorch fp32's own")
    rows = []
    for o in report.outputs:
        rows.append([o.name, o.max_abs, o.mean_abs, o.cosine, o.sqnr_db, o.top1_agreement, o.top5_agreement]
                    + ([getattr(o, "reference_error", None)] if own else []))
        limits = _pass_limits(report, o)
        if any(limits):
            rows.append(["pass if", *limits] + ([None] if own else []))
    return headers, rows


def _threshold(report, name: str) -> float | None:
    """One limit of ``report.thresholds`` (a ``check.Thresholds`` or its JSON read back); None when not gated."""
    return getattr(getattr(report, "thresholds", None), name, None)


def _pass_limits(report, out) -> list[str | None]:
    """The condition each metric of output ``out`` must meet, in ``parity_rows``'s columns after the name."""
    max_abs, relative = _threshold(report, "max_abs"), _threshold(report, "rel_max_abs")
    if max_abs is not None and relative is not None:  # fp32: the limit grows with the output's largest value
        max_abs = max(max_abs, relative * out.ref_max_abs)
    if getattr(out, "limit", None) is not None:  # and with PyTorch fp32's own error against float64
        max_abs = out.limit
    cosine, top1 = _threshold(report, "min_cosine"), _threshold(report, "min_top1")
    return [None if max_abs is None else f"<= {max_abs:.3g}", None, None if cosine is None else f">= {cosine:g}",
            None, None if top1 is None else f">= {top1:g}", None]


def parity_limits_line(report) -> str:
    """What the ``pass if`` rows cannot show: how the max abs limit is set, and the SQNR gate of ``edgekit
    check`` for quantized files."""
    parts = []
    max_abs, relative = _threshold(report, "max_abs"), _threshold(report, "rel_max_abs")
    own = any(getattr(o, "reference_error", None) is not None for o in getattr(report, "outputs", []))
    if max_abs is not None and relative is not None and own:
        parts.append(f"max abs against PyTorch in float64 <= the largest of {max_abs:g}, {relative:g} x the output's "
                     f"largest absolute reference value and {NOISE_FACTOR:g} x PyTorch fp32's own max abs error "
                     "against float64 (the same limit for a file as exact as PyTorch fp32, with room for other "
                     "summation orders)")
    elif max_abs is not None and relative is not None:
        parts.append(f"max abs <= {max_abs:g}, or {relative:g} x the output's largest absolute reference value when "
                     "that is larger")
    precision = getattr(report, "precision", None)
    if precision not in (None, "fp32"):
        parts.append(f"`edgekit check` also fails a quantized file ({precision}) whose SQNR is more than "
                     f"{REGRESSION_DB:g} dB below what its export recorded in it for the same inputs")
    parts.append("a metric without a limit is reported, not gated")
    return "limits: " + "; ".join(parts)


def render_parity(report) -> str:
    verdict = "PASS" if report.passed else "FAIL: " + "; ".join(report.failures)
    lines = [
        f"parity {report.precision}: {report.file} vs {report.reference} on {report.runtime}",
        f"inputs: {report.samples} from {report.data}"
        + (f" ({report.skipped_images} unreadable files skipped)" if report.skipped_images else ""),
        table(*parity_rows(report)),
        parity_limits_line(report),
        *_kernel_lines(report),
        *[f"note: {note}" for note in getattr(report, "notes", None) or []],
        verdict,
    ]
    return "\n".join(lines)


def _kernel_lines(report) -> list[str]:
    """int8 ONNX: per output, the real integer kernels against the float-simulated QDQ graph, and that
    simulation against the reference (what the quantization itself loses)."""
    kernels = getattr(report, "kernel_outputs", None) or (
        [report.kernels] if getattr(report, "kernels", None) is not None else [])
    if not kernels:
        return []
    simulated = getattr(report, "simulated", None) or []
    lines = [f"integer kernels vs float-simulated QDQ (at fault only if cosine < {KERNEL_MIN_COSINE:g} and "
             f"> {KERNEL_LOSS_DB:g} dB SQNR further from the reference than the simulation):"]
    for i, k in enumerate(kernels):
        sim = simulated[i] if i < len(simulated) else None
        tail = f"; simulation vs reference cosine {sim.cosine:.6f}, SQNR {_cell(sim.sqnr_db)} dB" if sim else ""
        lines.append(f"  {k.name}: cosine {k.cosine:.6f}, SQNR {_cell(k.sqnr_db)} dB, top-1 agreement "
                     f"{_cell(k.top1_agreement)}{tail}")
    return lines


def render_export(result) -> str:
    lines = [
        f"exported {result.model} -> {result.path} ({result.file_size / 1e6:.2f} MB, {result.precision})",
        f"report: {result.report_path}",
        f"weights: {result.weights_source} (sha256 {result.weights_sha256[:12]})",
    ]
    if result.shuffles:
        spellings = sorted({s.spelling for s in result.shuffles})
        lines.append(
            f"channel shuffles: {len(result.shuffles)} found ({', '.join(spellings)}), "
            f"lowered as {result.shuffle_lowering}"
        )
    else:
        lines.append("channel shuffles: none found")
    ops = ", ".join(f"{k} {v}" for k, v in result.op_histogram.items())
    lines.append(f"ops: {ops}")
    if result.format == "tflite":
        lines.append(f"layout transposes: {result.layout_transposes}; XNNPACK partitions: {result.xnnpack_partitions}")
        if result.calibration:
            lines.append(f"calibration: {result.calibration}")
    if result.usage:
        lines.append(f"use: {result.usage}")
    lines.extend(f"note: {note}" for note in result.notes)
    if result.parity is not None:
        lines.append(render_parity(result.parity))
    else:
        lines.append("parity: not checked (--no-check)")
    return "\n".join(lines)


def export_markdown(result) -> str:
    lines = [f"# {result.model} ({result.format}, {result.precision})", ""]
    lines.append(markdown_table(["op", "count"], [[k, v] for k, v in result.op_histogram.items()]))
    if result.parity is not None:
        lines += ["", "## Parity", "", markdown_table(*parity_rows(result.parity)), "",
                  parity_limits_line(result.parity)]
    return "\n".join(lines) + "\n"


def export_html(result) -> str:
    """A self-contained page (inline SVG, no network) for one export: op histogram and parity."""
    hist = list(result.op_histogram.items())
    body = [f"<h1>{html.escape(result.model)} &mdash; {result.format} {result.precision}</h1>"]
    body.append(f"<p>{html.escape(result.path)} &middot; {result.file_size / 1e6:.2f} MB</p>")
    if getattr(result, "usage", None):
        body.append("<h2>Use it</h2>" + f"<p>{html.escape(result.usage)}</p>" + _app_snippet_html(result))
    body.append("<h2>Operators</h2>" + bar_chart_svg([(k, float(v)) for k, v in hist], unit=""))
    if result.parity is not None:
        headers, rows = parity_rows(result.parity)
        body.append("<h2>Parity</h2>" + html_table(headers, rows) + _parity_limits_html(result.parity))
    return page(f"edgekit: {result.model}", "\n".join(body))


def _app_snippet_html(result) -> str:
    """A short Android snippet for the file the page describes (MediaPipe for .tflite, ONNX Runtime for .onnx)."""
    name = Path(result.path).name
    further = [e["name"] for e in result.extra_inputs or []]
    if further and result.format == "tflite":  # MediaPipe's vision tasks take one image input
        names = ", ".join(["image", *further])
        lines = [
            "// com.google.ai.edge.litert:litert: MediaPipe's vision tasks take one image input, this file "
            f"takes {1 + len(further)}",
            f'val interpreter = Interpreter(FileUtil.loadMappedFile(context, "{name}"))',
            "// one ByteBuffer per input, in the file's input order, as the use: line above says",
            f"interpreter.runForMultipleInputsOutputs(arrayOf({names}), outputs)",
        ]
    elif result.format == "tflite":
        lines = [
            "// com.google.mediapipe:tasks-vision: size, normalisation and labels come from the file's metadata",
            "val classifier = ImageClassifier.createFromOptions(context,",
            "    ImageClassifier.ImageClassifierOptions.builder()",
            f'        .setBaseOptions(BaseOptions.builder().setModelAssetPath("{name}").build())',
            "        .setMaxResults(5).build())",
            "val top = classifier.classify(BitmapImageBuilder(bitmap).build())",
            "    .classificationResult().classifications()[0].categories()[0]",
        ]
    else:
        contract = result.input_contract or {}
        shape = ", ".join(f"{d}L" for d in contract.get("shape", []))
        kind = "UINT8" if contract.get("dtype") == "uint8" else "FLOAT"
        lines = [
            "// com.microsoft.onnxruntime:onnxruntime-android",
            "val env = OrtEnvironment.getEnvironment()",
            f'val session = env.createSession(assets.open("{name}").readBytes())',
            f"// buffer: {contract.get('dtype', 'float32')} NCHW, as the line above says",
            f"val input = OnnxTensor.createTensor(env, buffer, longArrayOf({shape}), OnnxJavaType.{kind})",
            "val scores = session.run(mapOf(session.inputNames.first() to input))[0].value",
        ]
        if further:
            feeds = ", ".join(f'"{n}" to {n}' for n in ["input", *further])
            lines[-1:] = [f"// and one OnnxTensor per further input ({', '.join(further)}): float32, as use: says",
                          f"val scores = session.run(mapOf({feeds}))[0].value"]
    return f"<pre><code>{html.escape(chr(10).join(lines))}</code></pre>"


def _parity_limits_html(report) -> str:
    return f"<p>{html.escape(parity_limits_line(report))}</p>"
