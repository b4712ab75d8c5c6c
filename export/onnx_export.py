"""PyTorch -> ONNX: TorchScript exporter at a stable opset, onnxsim, then edgekit's channel-shuffle passes.

The TorchScript exporter (``dynamo=False``) is used on purpose: at opset 17 it gives a clean graph that
onnxsim folds to constants, while the dynamo exporter of torch 2.13 emits opset-18 ``Split(num_outputs)``
inside a model labelled opset 17, which onnxsim and strict checkers reject.
"""

from __future__ import annotations

import io
import json
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgekit.errors import ExportError, UserModelError
from edgekit.export.metadata import onnx_metadata_props
from edgekit.export.publish import StepClock, provenance, publish
from edgekit.export.result import ExportResult, PassRecord, ShuffleRecord
from edgekit.export.versions import tool_versions
from edgekit.fileio import ensure_writable_dir
from edgekit.input_contract import (
    DEFAULT_INPUT,
    EXTRA_INPUTS_KEY,
    METADATA_KEY,
    extra_inputs_to_metadata,
    resolve_io,
    usage_line,
)
from edgekit.progress import Progress, quiet

DEFAULT_OPSET = 17
DEFAULT_SHUFFLE_LOWERING = "fused"


def export_onnx(
    model: str = "shufflenet_v2_x1_0",
    *,
    weights: str | Path | None = None,
    pretrained: bool = False,
    input_shape: tuple[int, ...] | None = None,
    output_dir: str | Path = "edgekit-out",
    shuffle_lowering: str = DEFAULT_SHUFFLE_LOWERING,
    opset: int = DEFAULT_OPSET,
    input_kind: str = DEFAULT_INPUT,
    mean: tuple[float, ...] | None = None,
    std: tuple[float, ...] | None = None,
    check: bool = True,
    data: str | Path | None = None,
    samples: int = 8,
    progress: Progress | None = None,
    extra_input_shapes: tuple[tuple[int, ...], ...] = (),
    extra_data: str | Path | None = None,
) -> ExportResult:
    """Export a registry model or user factory to ``output_dir/<name>.onnx``, ``<name>.json`` (the export
    report) and ``<name>.html`` (the same report for people). ``input_kind`` (``input_contract.INPUT_KINDS``):
    what the file takes, NCHW: ``bytes`` (uint8, the default), ``pixels`` (float [0, 1]) or ``normalized``.
    ``mean``/``std``: a user factory's input normalisation (default ImageNet's, with a notice).
    ``extra_input_shapes``: a user factory's inputs after the image (``models.resolve``); the file takes them
    as float32, named after their ``forward`` arguments, and declares them (``input_contract.EXTRA_INPUTS_KEY``).

    Runs the parity check on the staged file unless ``check`` is False; a failed check raises ParityError
    and, like any other failure, leaves no file behind. Returns the ExportResult written to the JSON
    report. Raises EdgekitError subclasses for unknown models, bad weights, unwritable output, bad data.
    """
    from edgekit.export.onnx_input import normalize_in_model, onnx_extra_inputs, onnx_input_contract, onnx_output_facts
    from edgekit.export.passes import SHUFFLE_LOWERINGS

    if shuffle_lowering not in SHUFFLE_LOWERINGS:
        raise ExportError(f"unknown --shuffle {shuffle_lowering!r}; choose one of {', '.join(SHUFFLE_LOWERINGS)}")
    resolve_io(input_kind, None, int8=False)
    say = progress or quiet
    prepared = prepare_export(model, weights=weights, pretrained=pretrained, input_shape=input_shape,
                              output_dir=output_dir, opset=opset, shuffle_lowering=shuffle_lowering, say=say,
                              mean=mean, std=std, extra_input_shapes=extra_input_shapes, extra_data=extra_data)
    handle, out_dir, clock = prepared.handle, prepared.out_dir, prepared.clock
    onnx_model, pass_results, matches = prepared.onnx_model, prepared.pass_results, prepared.matches
    onnx_model = normalize_in_model(onnx_model, handle.mean, handle.std, input_kind)
    contract = onnx_input_contract(onnx_model, input_kind, handle.mean, handle.std)
    extra = onnx_extra_inputs(onnx_model)
    fields = provenance(model, handle, weights=weights, pretrained=pretrained, shuffle_lowering=shuffle_lowering,
                        precision="fp32", shuffles=len(matches))
    fields[METADATA_KEY] = contract.to_metadata()
    fields.update(extra_input_fields(extra))
    content = finalize(onnx_model, fields)
    clock.lap("finalize")

    def make_result(**measured) -> ExportResult:
        return ExportResult(
            model=handle.name,
            format="onnx",
            precision="fp32",
            path=str(out_dir / f"{handle.name}.onnx"),
            report_path=str(out_dir / f"{handle.name}.json"),
            input_shape=tuple(handle.input_shape),
            weights_source=handle.weights_source,
            weights_sha256=handle.weights_sha256,
            opset=opset,
            shuffle_lowering=shuffle_lowering,
            versions=tool_versions("torch", "onnx", "onnxsim", "onnxruntime"),
            op_histogram=op_histogram(onnx_model),
            shuffles=shuffle_records(matches, shuffle_lowering),
            passes=[PassRecord(name=r.name, changed=r.changed, details=list(r.details)) for r in pass_results],
            io=contract.dtype, input_contract=json.loads(contract.to_metadata()),
            usage=usage_line(contract, onnx_output_facts(onnx_model), extra),
            extra_inputs=[e.to_dict() for e in extra],
            **measured,
        )

    return publish(content, out_dir / f"{handle.name}.onnx", handle, make_result, clock=clock, check=check,
                   data=data, samples=samples, say=say)


@dataclass
class PreparedExport:
    """What every format's export starts from: the reference model and its simplified, lowered ONNX graph."""

    handle: Any
    out_dir: Path
    clock: StepClock
    onnx_model: Any
    pass_results: list
    matches: list


def prepare_export(model: str, *, weights, pretrained: bool, input_shape, output_dir, opset: int,
                   shuffle_lowering: str, say: Progress, mean=None, std=None,
                   extra_input_shapes=(), extra_data=None) -> PreparedExport:
    """Check the output directory, build the model, export it to ONNX, simplify, lower its shuffles.

    The output directory is checked first so a bad ``--output`` fails before any expensive work.
    """
    from edgekit.models import resolve

    clock = StepClock()
    out_dir = ensure_writable_dir(output_dir)
    say(f"building {model}")
    handle = resolve(model, weights=weights, pretrained=pretrained, input_shape=input_shape, mean=mean, std=std,
                     extra_input_shapes=extra_input_shapes, extra_data=extra_data)
    if handle.normalization == "assumed":
        say(f"note: assuming {handle.name} normalises its input with ImageNet's mean {handle.mean} and std "
            f"{handle.std}; pass --mean/--std, or --no-normalization, if it does not")
    if handle.family == "user" and handle.weights_source.startswith("init:"):
        say(f"note: {handle.name}'s BatchNorm layers never measured statistics (untrained), so it gets edgekit's "
            f"seeded weights with BatchNorm statistics measured on bundled photos ({handle.weights_source}); pass "
            "--weights FILE to export trained weights")
    clock.lap("build")
    say(f"exporting {handle.name} to ONNX opset {opset}")
    onnx_model = torch_to_onnx(handle.module, handle.input_shape, opset, extra_inputs=handle.extra_inputs)
    clock.lap("torch_onnx_export")
    say("simplifying with onnxsim")
    onnx_model = simplify(onnx_model)
    clock.lap("simplify")
    say("finding channel shuffles")
    onnx_model, pass_results, matches = _apply_passes(onnx_model, shuffle_lowering)
    clock.lap("passes")
    return PreparedExport(handle, out_dir, clock, onnx_model, pass_results, matches)


def extra_input_fields(extra) -> dict[str, str]:
    """The file metadata declaring the inputs after the image (none for a one-input model)."""
    return {EXTRA_INPUTS_KEY: extra_inputs_to_metadata(extra)} if extra else {}


def refuse_int8_extra_inputs(int8: bool, extra_input_shapes, extra_data) -> None:
    """int8 calibrates a model's inputs after the image on their real values: refuse such a model without
    them (``--extra-inputs``) before any work (ExportError naming the fix)."""
    if int8 and extra_input_shapes and extra_data is None:
        count = len(extra_input_shapes)
        raise ExportError(f"int8 calibrates the ranges of the model's {count} input{'s' if count > 1 else ''} after "
                          "the image on their real values, which edgekit cannot invent: pass --extra-inputs FILE.npz "
                          "(one array per input, named after it), or export fp32")


def shuffle_records(matches, lowering: str) -> list[ShuffleRecord]:
    return [
        ShuffleRecord(output=m.output, channels=m.channels, groups=m.groups, spelling=m.spelling, lowering=lowering)
        for m in matches
    ]


def torch_to_onnx(module, input_shape: tuple[int, ...], opset: int = DEFAULT_OPSET, extra_inputs=()):
    """Export ``module`` (eval mode) on a static input shape; returns an onnx.ModelProto. ``extra_inputs``
    (``models.ExtraInput``): the inputs after the image, each exported under its name.

    Raises UserModelError when the model's forward fails on that shape, ExportError when the exporter does.
    """
    import onnx
    import torch

    examples = (torch.zeros(*input_shape), *(torch.zeros(*e.shape) for e in extra_inputs))
    try:
        with torch.no_grad():
            outputs = module(*examples)
    except Exception as exc:
        shapes = " and ".join(",".join(map(str, e.shape)) for e in examples)
        raise UserModelError(
            f"the model's forward pass failed on input shape{'s' if len(examples) > 1 else ''} {shapes} "
            f"({exc.__class__.__name__}: {_first_line(exc)}); check --input-shape"
        ) from None
    count = len(outputs) if isinstance(outputs, (tuple, list)) else 1
    output_names = ["logits"] if count == 1 else [f"output_{i}" for i in range(count)]
    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module,
                examples,
                buffer,
                dynamo=False,
                opset_version=opset,
                input_names=["input", *(e.name for e in extra_inputs)],
                output_names=output_names,
                do_constant_folding=True,
            )
    except Exception as exc:
        raise ExportError(f"torch.onnx.export failed: {exc.__class__.__name__}: {_first_line(exc)}") from None
    return onnx.load_from_string(buffer.getvalue())


def simplify(onnx_model):
    """Fold constants and shape arithmetic with onnxsim; raises ExportError if it cannot prove equivalence."""
    import onnxsim

    try:
        simplified, ok = onnxsim.simplify(onnx_model)
    except Exception as exc:
        raise ExportError(f"onnxsim failed: {exc.__class__.__name__}: {_first_line(exc)}") from None
    if not ok:
        raise ExportError("onnxsim could not verify the simplified model; rerun with a different --opset")
    return simplified


def _apply_passes(onnx_model, lowering: str):
    from edgekit.export.passes import apply_shuffle_passes

    return apply_shuffle_passes(onnx_model, lowering)


def finalize(onnx_model, fields: dict[str, str]) -> bytes:
    """Stamp producer and provenance metadata, validate, and serialise deterministically."""
    import onnx

    from edgekit import __version__

    onnx_model.producer_name = "edgekit"
    onnx_model.producer_version = __version__
    del onnx_model.metadata_props[:]
    for key, value in onnx_metadata_props(fields):
        onnx_model.metadata_props.add(key=key, value=value)
    try:
        onnx.checker.check_model(onnx_model, full_check=True)
    except Exception as exc:
        raise ExportError(f"the exported graph is not valid ONNX: {_first_line(exc)}") from None
    return onnx_model.SerializeToString(deterministic=True)


def op_histogram(onnx_model) -> dict[str, int]:
    """Count of each op type in the main graph, most frequent first, ties by name."""
    counts = Counter(node.op_type for node in onnx_model.graph.node)
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else exc.__class__.__name__
