"""Accuracy of one or two models on a labelled data set (``edgekit eval``)."""

from __future__ import annotations

from typing import Any

from edgekit.report.tables import table


def eval_rows(report) -> tuple[list[str], list[list[Any]]]:
    """One row per evaluated model: top-1, top-5 (percent) and the runtime that ran it."""
    headers = ["model", "runtime", "images", "top-1 %", "top-5 %"]
    rows = [
        [r.model, r.runtime, r.images, f"{100.0 * r.top1:.2f}", None if r.top5 is None else f"{100.0 * r.top5:.2f}"]
        for r in report.results
    ]
    return headers, rows


def confusion_rows(result, classes: list[str]) -> tuple[list[str], list[list[Any]]]:
    """Per-class accuracy and the confusion matrix: rows are true classes, columns predicted classes."""
    headers = ["class", "images", "top-1 %", *classes, "other"]
    rows = [
        [c.name, c.images, f"{100.0 * c.top1:.1f}", *result.confusion[i]] for i, c in enumerate(result.per_class)
    ]
    return headers, rows


def render_eval(report, max_confusion_classes: int = 20) -> str:
    """The terminal view of ``edgekit eval``: accuracy per model, drop and agreement, per-class confusion."""
    lines = [f"accuracy on {report.data}", table(*eval_rows(report))]
    if report.top1_drop is not None:
        lines.append(f"top-1 drop {report.results[0].model} -> {report.results[1].model}: "
                     f"{report.top1_drop:+.2f} points; top-1 agreement {100.0 * report.top1_agreement:.2f}%")
    for result in report.results:
        if len(report.classes) <= max_confusion_classes:
            lines += [f"confusion of {result.model} (rows: true class, columns: predicted)",
                      table(*confusion_rows(result, report.classes))]
        else:
            worst = sorted(result.per_class, key=lambda c: c.top1)[:10]
            lines.append(f"{result.model}: worst classes " +
                         ", ".join(f"{c.name} {100.0 * c.top1:.1f}%" for c in worst))
    lines += report.notes
    return "\n".join(lines)
