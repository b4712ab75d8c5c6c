"""Inline SVG charts (no network, no plotting library): bars, grouped bars, lines with spread bars, scatter."""

from __future__ import annotations

import html
import math

from edgekit.report.tables import _cell

_SERIES_COLORS = ["#3b6ea5", "#d9822b", "#2f9e44", "#c92a2a", "#7048e8", "#0c8599", "#e67700", "#5c940d"]


def bar_chart_svg(items: list[tuple[str, float]], unit: str = "", width: int = 560) -> str:
    """Horizontal bar chart as inline SVG (one bar per item)."""
    if not items:
        return "<p>(no data)</p>"
    bar_h, label_w = 18, 140
    top = max(v for _, v in items) or 1.0
    height = bar_h * len(items) + 4
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">']
    for i, (label, value) in enumerate(items):
        y = i * bar_h + 2
        w = (width - label_w - 70) * value / top
        parts.append(f'<text x="{label_w - 6}" y="{y + 13}" text-anchor="end">{html.escape(label)}</text>')
        parts.append(f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="{bar_h - 4}" fill="#3b6ea5"/>')
        parts.append(f'<text x="{label_w + w + 4:.1f}" y="{y + 13}">{html.escape(_cell(value))}{unit}</text>')
    parts.append("</svg>")
    return "".join(parts)


def line_chart_svg(series: dict[str, list[tuple]], *, x_label: str = "", y_label: str = "",
                   width: int = 640, height: int = 320, bars: dict[str, list[tuple]] | None = None) -> str:
    """Lines with markers as inline SVG, one per series (``name -> [(x, y) or (x, y, point label), ...]``), with
    axes, tick labels (every x value, or round steps when there are more than 12) and a legend. A unit in
    parentheses at the end of ``y_label`` ("latency (ms)") is repeated in each point's tooltip. ``bars``
    (``name -> [(x, low, high) or (x, low, high, tooltip), ...]``) draws a vertical bar from low to high in the
    colour of the series of that name, under its line: the spread around each point; a high of ``math.inf``
    runs off the top of the chart, without an end mark."""
    points = [p for values in series.values() for p in values]
    if not points:
        return "<p>(no data)</p>"
    bars = bars or {}
    left, right, top, bottom = 64, 170, 16, 44
    plot_w, plot_h = width - left - right, height - top - bottom
    xs = sorted({p[0] for p in points})
    y_max = _nice_ceiling(max([p[1] for p in points]
                              + [b[2] for spans in bars.values() for b in spans if math.isfinite(b[2])]) * 1.05)
    unit = y_label.rsplit("(", 1)[1].rstrip(")") if y_label.endswith(")") and "(" in y_label else ""

    pad = 10 if bars else 0  # bars at the first and last x stay clear of the frame

    def sx(x: float) -> float:
        return left + (plot_w / 2 if len(xs) == 1 else pad + (plot_w - 2 * pad) * (x - xs[0]) / (xs[-1] - xs[0]))

    def sy(y: float) -> float:
        return top + plot_h * (1 - y / y_max)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">',
             f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#999"/>']
    for i in range(5):
        value = y_max * i / 4
        parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{sy(value):.1f}" y2="{sy(value):.1f}" '
                     'stroke="#eee"/>')
        parts.append(f'<text x="{left - 6}" y="{sy(value) + 4:.1f}" text-anchor="end">{_cell(value)}</text>')
    for x in xs if len(xs) <= 12 else _round_steps(xs[0], xs[-1]):
        parts.append(f'<line x1="{sx(x):.1f}" x2="{sx(x):.1f}" y1="{top + plot_h}" y2="{top + plot_h + 4}" '
                     'stroke="#999"/>')
        parts.append(f'<text x="{sx(x):.1f}" y="{top + plot_h + 16}" text-anchor="middle">{_cell(x)}</text>')
    parts.append(f'<text x="{left + plot_w / 2:.1f}" y="{height - 6}" text-anchor="middle">'
                 f'{html.escape(x_label)}</text>')
    parts.append(f'<text x="14" y="{top + plot_h / 2:.1f}" text-anchor="middle" '
                 f'transform="rotate(-90 14 {top + plot_h / 2:.1f})">{html.escape(y_label)}</text>')
    for n, (name, values) in enumerate(series.items()):
        color = _SERIES_COLORS[n % len(_SERIES_COLORS)]
        dodge = 4 * (n - (len(series) - 1) / 2)  # bars of several series at one x stand side by side
        for x, low, high, *tip in bars.get(name, []):
            tip = tip[0] if tip else f"{name}: {_cell(low)}-{_cell(high)} {unit} at {_cell(x)}"
            parts.append(f'<g stroke="{color}" stroke-opacity="0.55" stroke-width="1.5"><title>'
                         f'{html.escape(" ".join(tip.split()))}</title>'
                         + "".join(f'<line x1="{sx(x) + dodge - a:.1f}" x2="{sx(x) + dodge + a:.1f}" '
                                   f'y1="{sy(y1):.1f}" y2="{sy(y2):.1f}"/>'
                                   for a, y1, y2 in ((0, low, min(high, y_max)), (4, low, low), (4, high, high))
                                   if y2 <= y_max) + "</g>")
        values = sorted(values, key=lambda p: p[0])
        path = " ".join(f"{sx(p[0]):.1f},{sy(p[1]):.1f}" for p in values)
        parts.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"/>')
        radius = 3.5 if len(values) <= 60 else 2.0  # many points: small markers, so the line stays readable
        for x, y, *label in values:
            tip = (f"{label[0]}: {_cell(y)} {unit}" if label else f"{name}: {_cell(y)} {unit} at {_cell(x)}")
            parts.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="{radius}" fill="{color}">'
                         f'<title>{html.escape(" ".join(tip.split()))}</title></circle>')
        ly = top + 14 + 18 * n
        parts.append(f'<rect x="{left + plot_w + 12}" y="{ly - 9}" width="12" height="12" fill="{color}"/>')
        parts.append(f'<text x="{left + plot_w + 30}" y="{ly + 1}">{html.escape(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _round_steps(low: float, high: float, most: int = 10) -> list[float]:
    """At most about ``most`` round axis ticks (steps of 1, 2 or 5 times a power of ten) from ``low`` to ``high``."""
    span = high - low
    power = 10 ** math.floor(math.log10(span / most)) if span > 0 else 1.0
    step = next(m * power for m in (1, 2, 5, 10) if span / (m * power) <= most)
    first = math.ceil(low / step) * step
    return [first + i * step for i in range(int((high - first) // step) + 1)]


def _nice_ceiling(value: float) -> float:
    """The smallest 1, 2, 2.5 or 5 times a power of ten that is >= ``value`` (axis tops with round ticks)."""
    if value <= 0 or not math.isfinite(value):
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    return next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= value)


def grouped_bar_svg(categories: list[str], series: dict[str, list[float]], *, unit: str = "",
                    width: int = 760) -> str:
    """Horizontal grouped bars as inline SVG: one group per category, one bar per series, with a legend."""
    if not categories or not series:
        return "<p>(no data)</p>"
    values = [v for vs in series.values() for v in vs if isinstance(v, (int, float))]
    top = max(values, default=0.0) or 1.0
    bar_h, label_w, legend_h = 12, 150, 22
    group_h = bar_h * len(series) + 8
    height = legend_h + group_h * len(categories) + 4
    plot_w = width - label_w - 70
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">']
    for n, name in enumerate(series):
        color = _SERIES_COLORS[n % len(_SERIES_COLORS)]
        x = label_w + n * 150
        parts.append(f'<rect x="{x}" y="4" width="12" height="12" fill="{color}"/>'
                     f'<text x="{x + 16}" y="14">{html.escape(name)}</text>')
    for i, category in enumerate(categories):
        y0 = legend_h + i * group_h
        parts.append(f'<text x="{label_w - 6}" y="{y0 + group_h / 2 + 2:.1f}" text-anchor="end">'
                     f'{html.escape(category)}</text>')
        for n, (name, vs) in enumerate(series.items()):
            value = vs[i] if i < len(vs) and isinstance(vs[i], (int, float)) else None
            y = y0 + n * bar_h
            if value is None:
                parts.append(f'<text x="{label_w + 2}" y="{y + 10}" fill="#888">n/a</text>')
                continue
            w = plot_w * max(value, 0.0) / top
            color = _SERIES_COLORS[n % len(_SERIES_COLORS)]
            parts.append(f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="{bar_h - 2}" fill="{color}">'
                         f'<title>{html.escape(name)}: {_cell(value)}{unit}</title></rect>')
            parts.append(f'<text x="{label_w + w + 4:.1f}" y="{y + 10}" font-size="10">'
                         f'{_cell(round(value, 2))}{unit}</text>')
    parts.append("</svg>")
    return "".join(parts)


def scatter_svg(points: list[tuple[float, float, str, str]], *, x_label: str = "", y_label: str = "",
                width: int = 640, height: int = 360) -> str:
    """Points ``(x, y, tooltip, group)`` as an inline SVG scatter plot with axes and a legend by group."""
    if not points:
        return "<p>(no data)</p>"
    left, right, top, bottom = 64, 150, 16, 44
    plot_w, plot_h = width - left - right, height - top - bottom
    x_max = _nice_ceiling(max(p[0] for p in points) * 1.05)
    y_max = _nice_ceiling(max(p[1] for p in points) * 1.05)
    groups = list(dict.fromkeys(p[3] for p in points))
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">',
             f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#999"/>']
    for i in range(5):
        yv, xv = y_max * i / 4, x_max * i / 4
        y = top + plot_h * (1 - i / 4)
        x = left + plot_w * i / 4
        parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{_si(yv)}</text>')
        parts.append(f'<text x="{x:.1f}" y="{top + plot_h + 16}" text-anchor="middle">{_si(xv)}</text>')
    parts.append(f'<text x="{left + plot_w / 2:.1f}" y="{height - 6}" text-anchor="middle">'
                 f'{html.escape(x_label)}</text>')
    parts.append(f'<text x="14" y="{top + plot_h / 2:.1f}" text-anchor="middle" '
                 f'transform="rotate(-90 14 {top + plot_h / 2:.1f})">{html.escape(y_label)}</text>')
    for x, y, tip, group in points:
        color = _SCATTER_COLORS[groups.index(group) % len(_SCATTER_COLORS)]
        cx, cy = left + plot_w * x / x_max, top + plot_h * (1 - y / y_max)
        parts.append(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="3.5" fill="{color}" fill-opacity="0.75">'
                     f'<title>{html.escape(tip)}: {_cell(x)}, {_cell(y)}</title></circle>')
    for n, group in enumerate(groups):
        ly = top + 14 + 18 * n
        color = _SCATTER_COLORS[n % len(_SCATTER_COLORS)]
        parts.append(f'<rect x="{left + plot_w + 12}" y="{ly - 9}" width="12" height="12" fill="{color}"/>')
        parts.append(f'<text x="{left + plot_w + 30}" y="{ly + 1}">{html.escape(group)}</text>')
    parts.append("</svg>")
    return "".join(parts)


_SCATTER_COLORS = _SERIES_COLORS + ["#862e9c", "#495057", "#e64980", "#74b816"]


def _si(value: float) -> str:
    """An axis label: 0, 0.25, 500k, 1.5M."""
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.4g}{suffix}"
    return _cell(value)
