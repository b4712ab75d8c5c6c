"""Accuracy on labelled images: top-1/top-5, per-class confusion, and the drop between two models.

``evaluate`` streams a labelled source (``edgekit.data.labelled``) through one or two models (a registry
name, a user factory or an exported .onnx/.tflite file) in a single pass, so images are decoded once and
never all held in memory, and the fp32-vs-int8 drop and top-1 agreement are measured on the same images.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np

from edgekit.check import _run_in_batches
from edgekit.errors import DataError
from edgekit.file_metadata import read_metadata
from edgekit.input_contract import METADATA_KEY
from edgekit.progress import Progress, quiet

DEFAULT_BATCH = 64


@dataclass
class ClassAccuracy:
    """Top-1 accuracy of one class of the data set."""

    name: str
    images: int
    top1: float


@dataclass
class ModelAccuracy:
    """One model's accuracy. ``confusion[i][j]`` counts images of data class ``i`` predicted as data
    class ``j``; the last column counts predictions of a label that is not among the data's classes."""

    model: str
    runtime: str
    images: int
    top1: float
    top5: float | None
    per_class: list[ClassAccuracy]
    confusion: list[list[int]]


@dataclass
class EvalReport:
    """The result of ``evaluate``: accuracy per model and, with two models, the difference.

    ``top1_drop`` is the first model's top-1 minus the second's, in percentage points; ``top1_agreement``
    the share of images on which both predict the same class. ``converted`` counts images converted to
    RGB per original mode (``"L"``, ``"RGBA"`` ...); ``skipped`` the files that could not be decoded.
    """

    KIND: ClassVar[str] = "eval"  # in its JSON with VERSION (report.to_json); edgekit report reads by it
    VERSION: ClassVar[int] = 1

    data: str
    classes: list[str]
    images: int
    results: list[ModelAccuracy]
    skipped: int = 0
    converted: dict[str, int] = field(default_factory=dict)
    top1_drop: float | None = None
    top1_agreement: float | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class _Target:
    """What evaluation needs of a model: how to run it, how to feed it, what its outputs mean."""

    name: str
    source: object  # ModelHandle or a file path: whatever open_runtime takes
    input_shape: tuple[int, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    labels: list[str] | None


def _target(spec: str | os.PathLike[str], *, weights=None, input_shape=None) -> _Target:
    from edgekit.models import registry, resolve

    path = Path(spec)
    if path.suffix.lower() in (".onnx", ".tflite"):
        from edgekit.models.file_reference import metadata_input_shape

        meta = read_metadata(path)
        name = meta.get("model")
        reg = registry.model_metadata(name) if name and registry.is_registered(name) else {}
        shape = input_shape or metadata_input_shape(meta, path) or tuple(reg.get("input_shape", ()))
        if not shape:
            raise DataError(f"{path} carries no edgekit metadata giving its input shape; pass --input-shape N,C,H,W")
        mean, std = _declared_normalization(meta) or (tuple(reg.get("mean", (0.485, 0.456, 0.406))),
                                                      tuple(reg.get("std", (0.229, 0.224, 0.225))))
        labels = reg.get("labels")
        return _Target(str(path), str(path), tuple(shape), mean, std, list(labels) if labels else None)
    handle = resolve(str(spec), weights=weights, input_shape=input_shape)
    labels = registry.model_metadata(handle.name).get("labels") if registry.is_registered(handle.name) else None
    return _Target(handle.name, handle, tuple(handle.input_shape), handle.mean, handle.std,
                   list(labels) if labels else None)


def _declared_normalization(meta: dict[str, str]) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """The mean/std an exported file declares: its input contract's (what the runtime undoes when it feeds
    the file), else the older top-level ``mean``/``std`` keys (TFLite files carry both); None when it has
    neither. A damaged contract gives None here: opening the file refuses it with the reason."""
    if meta.get(METADATA_KEY):
        from edgekit.models.file_reference import declared_normalization

        mean, std = declared_normalization(meta)
        return None if mean is None else (mean, std)
    mean, std = _floats(meta.get("mean")), _floats(meta.get("std"))
    return (mean, std) if mean and std else None


def _floats(text: str | None) -> tuple[float, ...] | None:
    if not text:
        return None
    import json

    return tuple(float(v) for v in json.loads(text))


def class_to_label_index(classes: Sequence[str], labels: Sequence[str] | None, outputs: int, model: str) -> np.ndarray:
    """Map each data class name to the index of the model output it corresponds to.

    With ``labels`` the names must be among them; without, class folders must be named by output index
    (``0``, ``1``, ...). Raises ``DataError`` naming the classes that do not fit.
    """
    if labels is not None:
        index = {name: i for i, name in enumerate(labels)}
        unknown = [c for c in classes if c not in index]
        if unknown:
            shown = ", ".join(labels[:12]) + (" ..." if len(labels) > 12 else "")
            raise DataError(
                f"{len(unknown)} class folder(s) are not labels of {model}: {', '.join(unknown[:5])}; "
                f"rename the folders to the model's labels ({shown})"
            )
        return np.asarray([index[c] for c in classes], dtype=np.int64)
    bad = [c for c in classes if not (c.isdigit() and int(c) < outputs)]
    if bad:
        raise DataError(
            f"{model} has no class names, so class folders must be named by output index 0..{outputs - 1}; "
            f"found {', '.join(bad[:5])}"
        )
    return np.asarray([int(c) for c in classes], dtype=np.int64)


def evaluate(
    model: str | os.PathLike[str],
    data: str | os.PathLike[str] = "digits",
    *,
    compare: str | os.PathLike[str] | None = None,
    weights: str | None = None,
    input_shape: tuple[int, ...] | None = None,
    batch_size: int = DEFAULT_BATCH,
    threads: int = 1,
    progress: Progress | None = None,
) -> EvalReport:
    """Top-1/top-5 accuracy of ``model`` (and ``compare``, on the same images) on labelled ``data``.

    ``model``/``compare``: a registry name, a factory spec or an exported ``.onnx``/``.tflite`` file (its
    edgekit metadata names the model whose labels and preprocessing apply). ``data``: ``"digits"`` (the
    held-out split), ``"digits:train"``/``"digits:all"`` or a folder with one subfolder per class.
    ``progress`` gets a line about every 10% of the images. Returns an ``EvalReport``. Raises
    ``DataError`` (unusable data, class names that are not the model's labels, models of different input
    sizes or labels), ``ModelFileError`` and the errors of ``edgekit.models.resolve``.
    """
    from edgekit.data import preprocess
    from edgekit.data.labelled import open_labelled
    from edgekit.runtimes import open_runtime

    if batch_size < 1:
        raise DataError(f"batch size must be at least 1, got {batch_size}")
    say = progress or quiet
    targets = [_target(model, weights=weights, input_shape=input_shape)]
    if compare is not None:
        targets.append(_target(compare, weights=weights, input_shape=input_shape))
        a, b = targets
        if a.input_shape[1:] != b.input_shape[1:]:
            raise DataError(f"{a.name} takes {a.input_shape} but {b.name} takes {b.input_shape}; compare models "
                            "of the same input size")
        if a.labels != b.labels:
            raise DataError(f"{a.name} and {b.name} have different labels; compare two versions of one model")
    _, channels, height, width = targets[0].input_shape
    source = open_labelled(data, (int(height), int(width)))
    total = len(source)
    say(f"evaluating {' and '.join(t.name for t in targets)} on {source.description}")

    runtimes = [open_runtime(t.source, threads=threads) for t in targets]
    try:
        for t, rt in zip(targets, runtimes, strict=True):
            if len(rt.inputs) > 1:
                raise DataError(f"{t.name} takes {len(rt.inputs)} inputs; edgekit eval scores image classifiers "
                                "with one image input (check a model with several inputs with edgekit check)")
        outputs = [int(rt.outputs[0].shape[-1]) if rt.outputs and rt.outputs[0].shape
                   and rt.outputs[0].shape[-1] else None for rt in runtimes]
        maps: list[np.ndarray | None] = [None] * len(targets)
        n_classes = len(source.classes)
        confusion = [np.zeros((n_classes, n_classes + 1), dtype=np.int64) for _ in targets]
        top5_hits: list[int | None] = [None for _ in targets]
        agree = 0
        seen = 0
        next_report = max(1, total // 10)
        for images, labels in source.batches(batch_size):
            top1s = []
            for i, (t, rt) in enumerate(zip(targets, runtimes, strict=True)):
                x = preprocess(images, t.mean, t.std, int(channels))
                logits = _run_in_batches(rt.run, x, int(t.input_shape[0]))[0].reshape(len(x), -1)
                if maps[i] is None:
                    maps[i] = class_to_label_index(source.classes, t.labels, outputs[i] or logits.shape[1], t.name)
                    if t.labels is not None and len(t.labels) != logits.shape[1]:
                        raise DataError(f"{t.name} has {logits.shape[1]} outputs but {len(t.labels)} labels")
                truth = maps[i][labels]
                pred = np.argmax(logits, axis=1)
                # Predictions of a label outside the data's classes go to the last confusion column.
                column = np.full(len(pred), n_classes, dtype=np.int64)
                for data_class, label_index in enumerate(maps[i]):
                    column[pred == label_index] = data_class
                np.add.at(confusion[i], (labels, column), 1)
                if logits.shape[1] >= 5:
                    top5 = np.argpartition(-logits, 4, axis=1)[:, :5]
                    top5_hits[i] = (top5_hits[i] or 0) + int(np.sum(np.any(top5 == truth[:, None], axis=1)))
                top1s.append(pred)
            if len(top1s) == 2:
                agree += int(np.sum(top1s[0] == top1s[1]))
            seen += len(labels)
            if seen >= next_report or seen == total:
                say(f"{seen}/{total} images ({100.0 * seen / max(total, 1):.0f}%)")
                next_report = seen + max(1, total // 10)
        names = [f"{rt.name} {rt.version}" for rt in runtimes]
    finally:
        for rt in runtimes:
            rt.close()

    if seen == 0:
        raise DataError(f"--data {data}: none of the {total} images could be read; pass valid JPEG/PNG images")
    results = []
    for i, t in enumerate(targets):
        m = confusion[i]
        per_class = [
            ClassAccuracy(name, int(m[c].sum()), float(m[c, c] / m[c].sum()) if m[c].sum() else 0.0)
            for c, name in enumerate(source.classes)
        ]
        results.append(ModelAccuracy(
            model=t.name, runtime=names[i], images=seen, top1=float(np.trace(m[:, :n_classes]) / seen),
            top5=None if top5_hits[i] is None else float(top5_hits[i] / seen),
            per_class=per_class, confusion=m.tolist(),
        ))
    report = EvalReport(data=source.description, classes=list(source.classes), images=seen,
                        results=results, skipped=source.skipped, converted=dict(source.converted))
    if len(results) == 2:
        report.top1_drop = round(100.0 * (results[0].top1 - results[1].top1), 4)
        report.top1_agreement = agree / seen
    if report.converted:
        report.notes.append("converted to RGB: " + ", ".join(f"{n} {mode}" for mode, n in report.converted.items()))
    if report.skipped:
        report.notes.append(f"{report.skipped} unreadable files skipped")
    return report
