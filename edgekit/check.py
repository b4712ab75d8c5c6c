"""Parity: proof that an exported file computes what the reference PyTorch model computes.

``compare_outputs`` is a pure function over arrays; ``check_parity`` runs the reference model and the
exported file on the same inputs through ``edgekit.runtimes`` and returns a ``ParityReport``.

An fp32 file is judged against PyTorch run in float64, with a limit set by how far PyTorch's own float32
run is from that float64 result (its rounding noise), so a deep network with large outputs is not refused
for ordinary rounding and a reference too noisy to judge anything by is named as the cause.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import ClassVar

import numpy as np

from edgekit.cpu_features import CpuTarget, cpu_target
from edgekit.errors import DataError, EdgekitError, WeightsError
from edgekit.file_metadata import EXPORT_PARITY_KEY, read_metadata
from edgekit.limits import check_samples
from edgekit.progress import Progress, quiet


@dataclass(frozen=True)
class Thresholds:
    """Pass/fail limits for one precision; a limit left as None is not checked."""

    max_abs: float | None = None
    # fp32 rounding grows with the size of the values, like torch.allclose's rtol: for logits beyond
    # max_abs / rel_max_abs the allowed error grows with the largest reference value.
    rel_max_abs: float | None = None
    min_cosine: float | None = None
    min_top1: float | None = None


# fp32 must be numerically the same network; quantized models are judged by how close their logits point
# (cosine), since absolute errors scale with the logits. Top-1 agreement is reported but not gated for
# int8: untrained reference weights have top-1 margins of ~0.2 logits, below one int8 step's effect, so
# it measures the weights rather than the export (the trained digits reference tests it against labels).
THRESHOLDS: dict[str, Thresholds] = {
    "fp32": Thresholds(max_abs=1e-4, rel_max_abs=1e-5),
    "fp16": Thresholds(max_abs=5e-2, min_cosine=0.999),
    "int8": Thresholds(min_cosine=0.95),
}

#: An fp32 file passes when its max abs error against PyTorch in float64 is within NOISE_FACTOR times PyTorch
#: fp32's own max abs error against float64 on the same inputs (or the fixed THRESHOLDS["fp32"] limit, if
#: larger). Measured, exported-vs-float64 over PyTorch-fp32-vs-float64 on 8 bundled photos: ONNX Runtime 0.72
#: (issue 13's YOLO-style net: 8.4e-5 vs 1.16e-4) to 1.56 (registry ShuffleNetV2, MobileNetV3-Small,
#: ConvNeXt, MobileViT, YOLO-tiny, EfficientNet-B0, U-Net, DeepLabV3); LiteRT with XNNPACK 0.5-2.4 on the same
#: and 7.1 on an EfficientNet-style net with untrained BatchNorms (outputs ~0.01, where the fixed limit rules;
#: XNNPACK's approximate sigmoid in the squeeze-excite gates). 16 leaves twice that largest ratio (other CPUs'
#: kernels sum in other orders), while wrong files sit far above the noise:
#: one conv's weights scaled by 1.001 gave 0.0146 against a limit of 0.0063 on the noisiest test net
#: (tests/test_check_noise_floor.py), two swapped output channels 0.23.
NOISE_FACTOR = 16.0

#: PyTorch fp32's own max abs error against float64, as a share of the output's largest value, beyond which
#: the reference is numerically unstable. Measured on BN-calibrated registry models: 6e-7 (ConvNeXt-atto) to
#: 4e-6 (ShuffleNetV2 1.0x, EfficientNet-B0), 3.4e-5 for the DeepLabV3-style net (its correct files are 1.6-1.9x
#: that from float64, 5x over the fixed limit); issue 13's deep YOLO-style net 1.2e-5, scores centred by
#: subtracting a large common term 2.5e-5. Unstable: scores computed as the difference of two large, nearly
#: equal branches 1.5e-3, and issue 13's EfficientNet-style net with untrained BatchNorms had its files ~1e-3
#: of its ~1e3 logits off PyTorch fp32. A file that misses the fixed limit cannot be judged against such a
#: reference: a file as close to float64 as PyTorch fp32 is would pass, and so would a wrong one. Near this
#: bound the noise-grown limit reaches 16 x 2e-4 = 3.2e-3 of the output's size; the measured models stay
#: at or below 16 x 3.4e-5 = 5.4e-4.
UNSTABLE_REFERENCE = 2e-4

#: Integer kernels against the same QDQ graph simulated in float: both compute the same quantized network,
#: so they differ by requantization rounding: cosine 0.999997 on the trained digits reference and
#: 0.9985-0.9991 on the untrained 1.0x (tiny margins amplify rounding), measured with VNNI by
#: benchmarks/onnx_int8_quality.py. int16 overflow in kernels without VNNI took 1.0x from 0.982 to 0.964
#: against PyTorch (issue 5), i.e. about 0.98 between kernels and simulation: far below this limit.
#: Below it the kernels are blamed only when they are also further from the reference than the
#: simulation is (``KERNEL_LOSS_DB``): two roundings of one deep network can disagree by as much as each
#: is from PyTorch (an EfficientNet-style net: kernels vs simulation 0.991, both 0.979 from PyTorch).
KERNEL_MIN_COSINE = 0.995
#: SQNR against the reference that the integer kernels may lose beyond the float-simulated QDQ graph before
#: they are at fault: int16 overflow (issue 5) cost 1.0x about 3 dB (cosine 0.982 -> 0.964).
KERNEL_LOSS_DB = 1.0

#: A quantized file whose SQNR falls this far below what its export proved on the same inputs has changed
#: (1 dB is ~26% more error power). Dividing one weight channel's scale by 4 in the int8 digits file costs
#: 3.2 dB (28.96 -> 25.80 dB) with cosine still 0.9977; XNNPACK's int8 output is bit-identical across x86_64
#: and arm64, so the same file on another machine stays within it.
REGRESSION_DB = 1.0


@dataclass
class OutputParity:
    """How one output of the exported model compares with the reference over all samples."""

    name: str
    shape: tuple[int, ...]
    max_abs: float
    mean_abs: float
    ref_max_abs: float
    cosine: float
    sqnr_db: float
    top1_agreement: float | None = None
    top5_agreement: float | None = None
    #: fp32 with a float64 reference: PyTorch fp32's own max abs error against PyTorch in float64 (the metrics
    #: above then compare the file with float64), and the max abs limit that follows from it
    reference_error: float | None = None
    limit: float | None = None


@dataclass
class ParityReport:
    """The result of ``check_parity``: per-output metrics and the verdict against the thresholds."""

    KIND: ClassVar[str] = "parity"  # in its JSON with VERSION (report.to_json); edgekit report reads by it
    VERSION: ClassVar[int] = 1

    file: str
    reference: str
    runtime: str
    precision: str
    samples: int
    data: str
    skipped_images: int
    outputs: list[OutputParity]
    thresholds: Thresholds
    passed: bool
    failures: list[str] = field(default_factory=list)
    # int8 ONNX only: the real integer kernels compared with the QDQ graph simulated in float, per output in
    # ``kernel_outputs`` (``kernels`` is the output where they differ most), and that simulation compared with
    # the reference in ``simulated``: what the quantization itself loses
    kernels: OutputParity | None = None
    kernel_outputs: list[OutputParity] = field(default_factory=list)
    simulated: list[OutputParity] = field(default_factory=list)
    #: what the reader should know about how the file was judged (e.g. why there is no float64 reference)
    notes: list[str] = field(default_factory=list)


def compare_outputs(name: str, reference: np.ndarray, candidate: np.ndarray) -> OutputParity:
    """Compare two batches of one output (first axis = sample).

    Returns max/mean absolute error, the mean per-sample cosine similarity, the SQNR in dB (signal power of
    the reference over error power; ``inf`` when identical) and, for 2-D outputs with at least 5 classes,
    top-1 agreement (same argmax) and top-5 agreement (mean share of classes common to both top-5 sets).
    Raises ValueError when the shapes differ.
    """
    ref = np.asarray(reference, dtype=np.float64)
    got = np.asarray(candidate, dtype=np.float64)
    if ref.shape != got.shape:
        raise ValueError(f"output {name!r}: reference shape {ref.shape} != exported shape {got.shape}")
    diff = got - ref
    flat_ref = ref.reshape(ref.shape[0], -1)
    flat_got = got.reshape(got.shape[0], -1)
    norms = np.linalg.norm(flat_ref, axis=1) * np.linalg.norm(flat_got, axis=1)
    dots = np.sum(flat_ref * flat_got, axis=1)
    cosines = np.where(norms > 0, dots / np.where(norms > 0, norms, 1.0), np.where(dots == 0, 1.0, 0.0))
    noise = float(np.sum(diff**2))
    signal = float(np.sum(ref**2))
    sqnr = math.inf if noise == 0 else 10.0 * math.log10(max(signal, 1e-300) / noise)
    top1 = top5 = None
    if ref.ndim == 2 and ref.shape[1] >= 5:
        top1 = float(np.mean(np.argmax(ref, axis=1) == np.argmax(got, axis=1)))
        ref5 = np.argsort(-ref, axis=1, kind="stable")[:, :5]
        got5 = np.argsort(-got, axis=1, kind="stable")[:, :5]
        top5 = float(np.mean([len(set(a) & set(b)) / 5.0 for a, b in zip(ref5, got5, strict=True)]))
    return OutputParity(
        name=name,
        shape=tuple(int(d) for d in ref.shape[1:]),
        max_abs=float(np.max(np.abs(diff))) if diff.size else 0.0,
        mean_abs=float(np.mean(np.abs(diff))) if diff.size else 0.0,
        ref_max_abs=float(np.max(np.abs(ref))) if ref.size else 0.0,
        cosine=float(np.mean(cosines)),
        sqnr_db=sqnr,
        top1_agreement=top1,
        top5_agreement=top5,
    )


def compare_with_float64(name: str, exact: np.ndarray, reference: np.ndarray, candidate: np.ndarray,
                         thresholds: Thresholds) -> OutputParity:
    """Compare ``candidate`` (the file's output) with ``exact`` (PyTorch in float64), recording how far
    ``reference`` (PyTorch in float32) itself is from ``exact`` and the max abs limit that sets.
    Raises ValueError when the shapes differ."""
    out = compare_outputs(name, exact, candidate)
    own = np.abs(np.asarray(reference, dtype=np.float64) - np.asarray(exact, dtype=np.float64))
    out.reference_error = float(np.max(own)) if own.size else 0.0
    out.limit = max_abs_limit(out, thresholds)
    return out


def max_abs_limit(out: OutputParity, thresholds: Thresholds) -> float | None:
    """The max abs error ``out`` may have under ``thresholds`` (None: not gated): the fixed limit, grown with
    the output's largest value (``rel_max_abs``), and to ``NOISE_FACTOR`` times PyTorch fp32's own error
    against float64 when that was measured."""
    if thresholds.max_abs is None:
        return None
    limit = thresholds.max_abs
    if thresholds.rel_max_abs is not None:
        limit = max(limit, thresholds.rel_max_abs * out.ref_max_abs)
    if out.reference_error is not None:
        limit = max(limit, NOISE_FACTOR * out.reference_error)
    return limit


def unstable_reference(out: OutputParity) -> bool:
    """Whether PyTorch fp32's own error against float64 is beyond ``UNSTABLE_REFERENCE`` of the output's
    largest value (False when it was not measured)."""
    return out.reference_error is not None and out.reference_error > UNSTABLE_REFERENCE * out.ref_max_abs


def judge(outputs: list[OutputParity], thresholds: Thresholds) -> list[str]:
    """Return one message per threshold an output misses (empty list: parity holds).

    A max abs error within the fixed limit passes. Beyond it, an output whose reference is numerically
    unstable (``unstable_reference``) fails with a message that blames the reference, naming its magnitude
    and PyTorch fp32's own error, since no file can be judged by it; otherwise the limit grows to
    ``NOISE_FACTOR`` times that own error.
    """
    failures = []
    for out in outputs:
        limit = max_abs_limit(out, thresholds)
        fixed = max_abs_limit(replace(out, reference_error=None), thresholds)
        if fixed is not None and out.max_abs > fixed and unstable_reference(out):
            failures.append(
                f"{out.name}: the PyTorch reference is numerically unstable, so the export cannot be judged: its "
                f"values reach {out.ref_max_abs:.3g} and PyTorch fp32 itself is {out.reference_error:.3g} from "
                f"float64 on the same inputs ({out.reference_error / out.ref_max_abs:.1e} of them; well-conditioned "
                f"networks stay under {UNSTABLE_REFERENCE:g}; this file is {out.max_abs:.3g} from float64); give "
                "the model well-scaled weights (trained, with --weights) and check again"
            )
        elif limit is not None and not out.max_abs <= limit:
            if out.reference_error is None:
                failures.append(f"{out.name}: max abs error {out.max_abs:.3g} > {limit:.3g}")
            else:
                failures.append(
                    f"{out.name}: max abs error {out.max_abs:.3g} against PyTorch in float64 > {limit:.3g} (outputs "
                    f"up to {out.ref_max_abs:.3g}; PyTorch fp32's own error {out.reference_error:.3g}, the limit is "
                    f"{NOISE_FACTOR:g}x that or the fixed one): the export computes something else"
                )
        if thresholds.min_cosine is not None and not out.cosine >= thresholds.min_cosine:
            failures.append(f"{out.name}: cosine {out.cosine:.5f} < {thresholds.min_cosine:g}")
        if (
            thresholds.min_top1 is not None
            and out.top1_agreement is not None
            and not out.top1_agreement >= thresholds.min_top1
        ):
            failures.append(f"{out.name}: top-1 agreement {out.top1_agreement:.3f} < {thresholds.min_top1:g}")
    return failures


def check_parity(
    exported: str | Path,
    reference,
    *,
    data: str | Path | None = None,
    samples: int = 8,
    threads: int = 1,
    precision: str | None = None,
    progress: Progress | None = None,
) -> ParityReport:
    """Run ``reference`` (a ModelHandle) and the exported file on the same inputs and compare.

    ``data`` is an image folder or None for the bundled natural images; ``samples`` caps how many images are
    used. ``precision`` picks the thresholds (default: detected from the file). Returns a ParityReport;
    raises ModelFileError for an unreadable file and DataError for unusable inputs.
    """
    from edgekit.data import load_inputs
    from edgekit.data.extra_inputs import describe_extra_inputs
    from edgekit.runtimes import open_runtime

    check_samples(samples, reference.input_shape)
    say = progress or quiet
    _check_declared_shape(exported, reference)
    inputs = load_inputs(data, samples, reference.input_shape, reference.mean, reference.std)
    extra = getattr(reference, "extra_inputs", ())
    described = inputs.description + describe_extra_inputs(reference)
    say(f"comparing on {inputs.array.shape[0]} inputs from {described}")
    batch = model_inputs(inputs.array, reference)
    with open_runtime(exported, threads=threads) as runtime:
        precision = precision or detect_precision(runtime)
        model_batch = reference.input_shape[0]
        exported_outs = _run_in_batches(runtime.run, batch, model_batch)
        output_names = [spec.name for spec in runtime.outputs]
        runtime_name = f"{runtime.name} {runtime.version}"
    with open_runtime(reference.module, threads=threads, extra_inputs=extra) as torch_runtime:
        reference_outs = _run_in_batches(torch_runtime.run, batch, model_batch)
    if len(reference_outs) != len(exported_outs):
        raise DataError(
            f"the exported file has {len(exported_outs)} outputs but the reference model has "
            f"{len(reference_outs)}; is --model the model this file was exported from?"
        )
    thresholds = THRESHOLDS.get(precision, THRESHOLDS["fp32"])
    exact, notes = None, []
    if precision == "fp32":
        say("running PyTorch in float64 for the exact reference")
        exact, why_not = _float64_outputs(reference, batch, threads, len(reference_outs))
        notes += [why_not] if why_not else []
    outputs = []
    for i, (name, ref, got) in enumerate(zip(output_names, reference_outs, exported_outs, strict=False)):
        try:
            if exact is None:
                outputs.append(compare_outputs(name, ref, got))
            else:
                outputs.append(compare_with_float64(name, exact[i], ref, got, thresholds))
        except ValueError as exc:
            raise DataError(f"{exc}; is --model the model this file was exported from?") from None
    failures = judge(outputs, thresholds)
    kernel_outputs, simulated = [], []
    if precision == "int8" and Path(exported).suffix.lower() == ".onnx" and exported_outs:
        say("comparing ONNX Runtime's integer kernels with the float-simulated QDQ graph")
        kernel_outputs, simulated, kernel_failures = _check_kernels(
            exported, threads, batch, model_batch, output_names, reference_outs, exported_outs, outputs, thresholds,
            say)
        failures += kernel_failures
    return ParityReport(
        file=str(exported),
        reference=f"pytorch:{reference.name}" + (" in float64" if exact is not None else ""),
        runtime=runtime_name,
        precision=precision,
        samples=int(inputs.array.shape[0]),
        data=described,
        skipped_images=inputs.skipped,
        outputs=outputs,
        thresholds=thresholds,
        passed=not failures,
        failures=failures,
        kernels=min(kernel_outputs, key=lambda k: k.cosine) if kernel_outputs else None,
        kernel_outputs=kernel_outputs,
        simulated=simulated,
        notes=notes,
    )


def _float64_outputs(reference, batch: np.ndarray, threads: int, count: int) -> tuple[list | None, str | None]:
    """PyTorch's outputs for ``batch`` computed in float64 (None and the reason when the model cannot run so:
    a hard-coded float32 tensor meeting float64 ones, an op without a float64 kernel)."""
    from edgekit.runtimes.torch_runtime import TorchRuntime

    fixed = "the fp32 limit is the fixed one"
    try:
        with TorchRuntime(reference.module, threads=threads, float64=True,
                          extra_inputs=getattr(reference, "extra_inputs", ())) as runtime:
            outs = _run_in_batches(runtime.run, batch, reference.input_shape[0], dtype=np.float64)
    except EdgekitError as exc:
        return None, f"{fixed}: PyTorch could not run {reference.name} in float64 ({exc})"
    if len(outs) != count:
        return None, f"{fixed}: {reference.name} gave {len(outs)} outputs in float64 but {count} in float32"
    return outs, None


def _check_declared_shape(exported, reference) -> None:
    """Refuse a file whose declared input cannot take the reference's images, before running it (a damaged
    or foreign file can declare a huge input that would take minutes to run)."""
    from edgekit.runtimes.base import guess_layout
    from edgekit.runtimes.vetting import declared_input_shape

    shape = declared_input_shape(exported)
    if shape is None or len(shape) != 4:
        return
    if guess_layout(shape, "NCHW") == "NHWC":
        shape = (shape[0], shape[3], shape[1], shape[2])
    want = tuple(reference.input_shape[1:])
    if any(d is not None and d != w for d, w in zip(shape[1:], want, strict=True)):
        got = "x".join("?" if d is None else str(d) for d in shape)
        raise DataError(f"{Path(exported).name} takes input {got} (NCHW) but the reference {reference.name} takes "
                        f"{'x'.join(map(str, reference.input_shape))}; is --model the model this file was exported "
                        "from (and --input-shape the one it was exported at)?")


def _check_kernels(exported, threads: int, batch: np.ndarray, model_batch: int, names: list[str], reference_outs,
                   exported_outs, outputs: list[OutputParity], thresholds: Thresholds, say: Progress):
    """int8 ONNX: run the QDQ graph simulated in float (no graph optimization) and, where the kernels lose
    against it, at level basic (no QLinear fusions); returns ``(kernels vs simulation, simulation vs
    reference, failure messages)``, per output."""
    from edgekit.runtimes import open_runtime

    with open_runtime(exported, threads=threads, optimization="disable") as runtime:
        simulated_outs = _run_in_batches(runtime.run, batch, model_batch)
    kernels = [compare_outputs(n, s, e) for n, s, e in zip(names, simulated_outs, exported_outs, strict=True)]
    simulated = [compare_outputs(n, r, s) for n, r, s in zip(names, reference_outs, simulated_outs, strict=True)]
    unfused = None
    if any(kernel_loss(k, s, e) is not None for k, s, e in zip(kernels, simulated, outputs, strict=True)):
        say("running the file at ONNX Runtime's optimization level basic (no QLinear fusions)")
        with open_runtime(exported, threads=threads, optimization="basic") as runtime:
            basic_outs = _run_in_batches(runtime.run, batch, model_batch)
        unfused = [compare_outputs(n, r, b) for n, r, b in zip(names, reference_outs, basic_outs, strict=True)]
    meta = read_metadata(exported)
    advice = kernel_advice(cpu_target(), meta.get("reduce_range") == "true", simulated, unfused)
    return kernels, simulated, judge_kernels(kernels, simulated, outputs, thresholds, advice)


def kernel_loss(kernels: OutputParity, simulated: OutputParity, exported: OutputParity) -> float | None:
    """dB of SQNR against the reference that the integer kernels lose beyond the float-simulated QDQ graph
    on one output, when that makes them at fault (they stray from the simulation below ``KERNEL_MIN_COSINE``
    and lose more than ``KERNEL_LOSS_DB``); else None. ``kernels``: kernels vs simulation; ``simulated``:
    simulation vs reference; ``exported``: kernels vs reference."""
    lost = simulated.sqnr_db - exported.sqnr_db
    if kernels.cosine >= KERNEL_MIN_COSINE or not lost > KERNEL_LOSS_DB:
        return None
    return lost


def kernel_advice(host: CpuTarget, reduce_range: bool, simulated: list[OutputParity],
                  unfused: list[OutputParity] | None) -> str:
    """What helps when the integer kernels lose accuracy, from facts: ``host`` has
    int8 dot products or not, the file has 7-bit weights (``reduce_range``) or not, and how the file does at
    optimization level basic (``unfused``, vs the reference) against the simulation (``simulated``)."""
    if not host.dot_product and not reduce_range:
        return (f"this CPU has no int8 dot products ({host.evidence}) and the file has 8-bit weights, whose int16 "
                "sums overflow: re-export with --target-cpu avx2 (7-bit weights, no overflow)")
    if unfused is not None and all(u.sqnr_db >= s.sqnr_db - KERNEL_LOSS_DB
                                   for u, s in zip(unfused, simulated, strict=True)):
        cosines = ", ".join(f"{u.cosine:.5f}" for u in unfused)
        return (f"ONNX Runtime's QLinear* fusions lose it: without them (session graph_optimization_level "
                f"ORT_ENABLE_BASIC) the file gives cosine {cosines}; run it at that level")
    return ("7-bit weights would not help: the loss is in ONNX Runtime's integer kernels on this CPU "
            f"({host.evidence}), with and without its QLinear* fusions; compare layers with --per-layer")


def judge_kernels(kernels: list[OutputParity], simulated: list[OutputParity], exported: list[OutputParity],
                  thresholds: Thresholds, advice: str) -> list[str]:
    """Failure messages that say, per output of an int8 ONNX file, whether the integer kernels or the
    quantization is at fault (empty when neither is). ``kernels``: integer kernels vs the QDQ graph simulated
    in float; ``simulated``: that simulation vs the reference; ``exported``: kernels vs the reference (what
    ``judge`` gated); ``advice``: ``kernel_advice``'s sentence, added to kernel failures.
    """
    failures = []
    for k, s, e in zip(kernels, simulated, exported, strict=True):
        lost = kernel_loss(k, s, e)
        if lost is not None:
            failures.append(
                f"{e.name}: kernel problem: ONNX Runtime's integer kernels are {lost:.1f} dB SQNR further from the "
                f"reference than the same QDQ graph simulated in float (cosine {e.cosine:.5f} vs {s.cosine:.5f}; "
                f"kernels vs simulation {k.cosine:.5f} < {KERNEL_MIN_COSINE}); {advice}")
        if thresholds.min_cosine is not None and not e.cosine >= thresholds.min_cosine \
                and not s.cosine >= thresholds.min_cosine:
            failures.append(
                f"{e.name}: the quantization loses it, not the kernels: the QDQ graph simulated in float is itself at "
                f"cosine {s.cosine:.5f} from the reference; see which layers with --per-layer")
    return failures


def model_inputs(images: np.ndarray, handle) -> np.ndarray | list[np.ndarray]:
    """What a runtime is fed for ``images``: the images alone, or for a model with inputs after the image
    (``handle.extra_inputs``) a list with values for each (``data.extra_inputs``), one row per image."""
    if not getattr(handle, "extra_inputs", ()):
        return images
    from edgekit.data.extra_inputs import extra_inputs_for

    return [images, *extra_inputs_for(handle, images.shape[0])]


def _run_in_batches(run, batch: np.ndarray | list[np.ndarray], model_batch: int,
                    dtype=np.float32) -> list[np.ndarray]:
    """Run ``run`` on ``batch`` (one array, or one per model input) in slices of the model's fixed batch size and
    stack per output (as ``dtype``)."""
    arrays = batch if isinstance(batch, list) else [batch]
    step = max(1, int(model_batch))
    pieces: list[list[np.ndarray]] = []
    for start in range(0, arrays[0].shape[0], step):
        chunks = [a[start : start + step] for a in arrays]
        count = chunks[0].shape[0]
        if count < step:  # pad the last slice to the static batch, then drop the padding
            chunks = [np.concatenate([c, np.repeat(c[-1:], step - count, axis=0)]) for c in chunks]
        outs = run(chunks if isinstance(batch, list) else chunks[0])
        if count < step:
            outs = [o[:count] for o in outs]
        pieces.append([np.asarray(o, dtype=dtype) for o in outs])
    return [np.concatenate([p[i] for p in pieces]) for i in range(len(pieces[0]))]


def detect_precision(runtime) -> str:
    """Guess the precision of an exported model from its runtime: int8 if its graph is quantized."""
    detector = getattr(runtime, "precision", None)
    if isinstance(detector, str):
        return detector
    if any(spec.dtype in ("int8", "uint8") for spec in runtime.inputs):
        return "int8"
    return "fp32"


def check_exported_file(
    exported: str | Path,
    *,
    model: str | None = None,
    weights: str | None = None,
    pretrained: bool = False,
    input_shape: tuple[int, ...] | None = None,
    data: str | Path | None = None,
    samples: int = 8,
    threads: int = 1,
    progress: Progress | None = None,
    extra_input_shapes: tuple[tuple[int, ...], ...] | None = None,
    extra_data: str | Path | None = None,
) -> ParityReport:
    """``edgekit check``: rebuild the reference named in the file's edgekit metadata (or given) and compare.

    ``extra_input_shapes``: the inputs after the image (None: as the file declares them, unless ``input_shape``
    is given); ``extra_data``: an ``.npz`` of their values (else seeded N(0, 1)). Raises WeightsError when the
    rebuilt reference's weights differ from those the file was exported with (so a parity failure is never blamed
    on the exporter when the reference is simply different).
    """
    from edgekit.models import resolve
    from edgekit.models.file_reference import reference_for_file

    meta = read_metadata(exported)
    ref = reference_for_file(exported, meta, model=model, weights=weights, pretrained=pretrained,
                             input_shape=input_shape, extra_input_shapes=extra_input_shapes)
    handle = resolve(ref.spec, weights=weights, pretrained=ref.pretrained, input_shape=ref.input_shape,
                     mean=ref.mean, std=ref.std, extra_input_shapes=ref.extra_input_shapes, extra_data=extra_data)
    recorded = meta.get("weights_sha256")
    if recorded and ref.from_file and recorded != handle.weights_sha256:
        raise WeightsError(
            f"the reference weights (sha256 {handle.weights_sha256[:12]}) differ from those {Path(exported).name} "
            f"was exported with ({recorded[:12]}); pass the original file with --weights FILE"
        )
    if recorded and handle.family == "user" and recorded != handle.weights_sha256:
        # A factory builds its weights in code, so different weights mean different code or init, not an export error.
        raise WeightsError(
            f"{handle.name} now builds weights (sha256 {handle.weights_sha256[:12]}, {handle.weights_source}) other "
            f"than those {Path(exported).name} was exported with ({recorded[:12]}): the factory changed, or the file "
            "comes from an edgekit that left untrained BatchNorm statistics as they were; pass the weights it was "
            "exported with as --weights FILE, or re-export it"
        )
    report = check_parity(exported, handle, data=data, samples=samples, threads=threads, progress=progress)
    report.failures += judge_against_export(report, meta.get(EXPORT_PARITY_KEY))
    report.passed = not report.failures
    if not report.passed and handle.extra_inputs and handle.extra_values is None and report.precision != "fp32":
        report.notes.append("the inputs after the image got seeded N(0, 1) values, not necessarily those the file was "
                            "calibrated on; pass them with --extra-inputs FILE.npz")
    return report


def judge_against_export(report: ParityReport, recorded: str | None) -> list[str]:
    """Failure messages for outputs of a quantized file that lost more than ``REGRESSION_DB`` of SQNR against
    the parity its export recorded in the file, on the same inputs (else empty: fp32 is judged by its
    absolute limits, and other inputs are not comparable)."""
    import json

    if not recorded or report.precision == "fp32":
        return []
    try:
        proved = json.loads(recorded)
        same_inputs = proved["data"] == report.data and int(proved["samples"]) == report.samples
        outputs = {name: float(v["sqnr_db"]) for name, v in proved["outputs"].items()}
    except (ValueError, TypeError, KeyError, AttributeError):
        return []  # a damaged record proves nothing either way; the thresholds still apply
    if not same_inputs:
        return []
    failures = []
    for out in report.outputs:
        before = outputs.get(out.name)
        if before is not None and out.sqnr_db < before - REGRESSION_DB:
            failures.append(
                f"{out.name}: SQNR {out.sqnr_db:.1f} dB is {before - out.sqnr_db:.1f} dB below the {before:.1f} dB its "
                "export proved on the same inputs: the file changed since export (or this machine's int8 kernels "
                "differ); re-export it, or see where with --per-layer"
            )
    return failures
