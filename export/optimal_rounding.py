"""Weight rounding that minimises each layer's output error on real inputs (GPTQ), for int8 exports.

Rounding every weight to its nearest int8 level minimises the error of the weights, not of what the
layer computes: ``||(W - Wq) x||`` over the inputs ``x`` the layer sees. GPTQ (Frantar et al. 2023, after
Optimal Brain Quantization) rounds the input columns one at a time and moves the not-yet-rounded weights
of the same output channel to cancel the error just made, weighted by the inputs' second moments
``H = E[x x^T]``. On ShuffleNetV2 1.0x, int8 weights alone (float activations) cost as much logit cosine
as all activations together; this is where that goes down.

The result stays on the exporters' own grids: per output channel the scale is ``max|w| / qmax`` of the
original weights and the weight that sets it keeps its level ``+-qmax``, so the TFLite quantizer and ONNX
Runtime, re-deriving the scale from the new float weights, find the same scale and the same integers.
Each bias absorbs the mean shift of the new weights, ``(Wq - W) . E[x]`` (as ``weight_rounding`` does for
nearest rounding). Works on fp32 ONNX graphs before either exporter quantizes them.
"""

from __future__ import annotations

import contextlib
import copy
import functools
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import helper, numpy_helper

from edgekit.errors import ExportError
from edgekit.export.activation_ranges import RangePass
from edgekit.export.passes.graph_utils import tensor_reads
from edgekit.runtimes.observer import ActivationObserver, ObservationError, first_rows

#: Damping added to H's diagonal, as a fraction of its mean (GPTQ's default): keeps H invertible when a
#: channel is constant or dead on the calibration images.
DAMPING = 0.01
#: Images H is measured on: second moments settle long before (ShuffleNetV2 1.0x logit cosine, TFLite /
#: ONNX: 0.98443 / 0.98427 from 64 images, 0.98448 / 0.98410 from 32).
MAX_IMAGES = 64
#: Patches per weight input a layer's H is estimated from, where the images have them, and at most this
#: many per image: a depthwise filter's 9x9 H needs far fewer than a wide dense layer's. ShuffleNetV2 1.0x
#: cosine, mean over patch seeds 0-2, TFLite / ONNX: 0.98447 / 0.98416 with 1024 per image (as before),
#: 0.98444 / 0.98408 with 256 per input, 0.98450 / 0.98410 with 64.
PATCHES_PER_INPUT = 64
MAX_PATCHES_PER_IMAGE = 1024
#: GPTQ only where the images give a layer at least this many input patches per weight input (the size
#: of H): with fewer, H is barely estimated, GPTQ fits the calibration patches and gains nothing on others,
#: while H costs patches x inputs^2 and its factor inputs^3. Such layers are rounded to nearest with their
#: bias corrected. Measured (32 images): ShuffleNetV2 1.0x cosine 0.98448 with GPTQ everywhere, 0.98447
#: with its classifier, last 1x1 conv and stage-4 convs rounded to nearest; ResNet-18's 3x3 convs of 256
#: and 512 channels (2304 and 4608 inputs), most of its GPTQ time, give 1 - cosine 4.9e-4 with GPTQ and
#: 5.0e-4 without (6.7e-4 with no GPTQ at all).
MIN_PATCHES_PER_INPUT = 8
#: ONNX Runtime optimizations for the runs H is measured on: H does not need the unfused graph's last
#: bits (activations within 3e-6 relative on ResNet-18), whose runs take 21-38 ms per image fused,
#: 37-49 ms unfused.
PROBE_OPTIMIZATION = "all"
#: Inputs from which a layer's second moments run on every BLAS thread (see ``_blas_threads``).
WIDE_INPUTS = 512
#: Columns rounded between two updates of the rest of a layer's weights (GPTQ's lazy batch updates).
BLOCK = 128


@dataclass
class RoundingResult:
    """What ``round_weights_optimally`` did: layers rounded and the drop in their output error."""

    layers: int = 0
    skipped: list[str] = field(default_factory=list)
    #: Layers rounded to nearest (biases corrected) because the images give them too few input patches
    #: to estimate H (``MIN_PATCHES_PER_INPUT``).
    nearest: list[str] = field(default_factory=list)
    #: Mean over layers of (output error with GPTQ) / (output error with nearest rounding), on H.
    mean_error_ratio: float = 1.0


def round_weights_optimally(
    model: onnx.ModelProto, images_nchw: np.ndarray, *, qmax: int = 127, seed: int = 0, ranges: RangePass | None = None,
    extra: dict[str, np.ndarray] | None = None,
) -> tuple[onnx.ModelProto, RoundingResult]:
    """A copy of the fp32 ``model`` whose Conv (plain, grouped-as-depthwise) and Gemm weights are already
    rounded to their symmetric per-channel grid (``max|w| / qmax``) by GPTQ on ``images_nchw``, biases
    corrected for the mean shift. ``qmax``: 127 for int8 weights, 64 for ONNX Runtime's ``reduce_range``.

    Layers whose weights or bias are not constants, shared, or whose kind is not handled are left as
    they are and named in ``RoundingResult.skipped``; layers the images give too few input patches are
    rounded to nearest, biases corrected, and named in ``RoundingResult.nearest``. ``ranges``: activation
    ranges to gather in the same pass over the images (all of them; H uses the first ``MAX_IMAGES``), on the
    graph before rounding. ``extra``: values of the model's inputs after the image, one row per image. Raises
    ``ExportError`` for images that do not fit.
    """
    out = copy.deepcopy(model)
    graph = out.graph
    inits = {t.name: t for t in graph.initializer}
    reads = tensor_reads(graph)
    layers, result = [], RoundingResult()
    for node in graph.node:
        if node.op_type not in ("Conv", "Gemm"):
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        ok = (node.input[1] in inits and reads[node.input[1]] == 1 and len(node.input) > 2
              and node.input[2] in inits and reads[node.input[2]] == 1)
        if node.op_type == "Gemm":
            ok = ok and attrs.get("transB", 0) == 1 and attrs.get("transA", 0) == 0
        else:
            w_shape = tuple(inits[node.input[1]].dims) if ok else ()
            group = attrs.get("group", 1)
            ok = ok and len(w_shape) == 4 and (group == 1 or (w_shape[1] == 1 and group == w_shape[0]))
            ok = ok and attrs.get("auto_pad", b"NOTSET") in (b"NOTSET", "NOTSET")
            ok = ok and all(d == 1 for d in attrs.get("dilations", [1, 1]))
        if ok:
            if node.op_type == "Conv":
                attrs["kernel_shape"] = list(w_shape[2:])  # optional in ONNX: the weights say it
                attrs["channels"] = w_shape[1]
            layers.append((node, attrs))
        else:
            result.skipped.append(node.name or node.output[0])
    if not layers:
        return out, result
    with _blas_threads(1):
        stats = _input_statistics(out, layers, images_nchw, seed, ranges, extra)
        ratios = _round_layers(layers, inits, stats, qmax, result)
    result.layers = len(ratios)
    result.mean_error_ratio = float(np.mean(ratios)) if ratios else 1.0
    return out, result


def _round_layers(layers, inits, stats, qmax: int, result: RoundingResult) -> list[float]:
    """Round each layer's weights in ``inits`` (GPTQ, or nearest where H is None) and correct its bias;
    returns the GPTQ layers' error ratios."""
    ratios = []
    for node, attrs in layers:
        w = numpy_helper.to_array(inits[node.input[1]]).astype(np.float64)
        b = numpy_helper.to_array(inits[node.input[2]]).astype(np.float64)
        hessian, mean = stats[node.output[0]]
        depthwise = node.op_type == "Conv" and attrs.get("group", 1) > 1
        flat = w.reshape(w.shape[0], -1)
        if hessian is None:  # too few patches to know H: nearest rounding, bias corrected all the same
            q = _nearest(flat, qmax)
            shift = ((q - flat) * mean).sum(axis=1) if depthwise else (q - flat) @ mean
            result.nearest.append(node.name or node.output[0])
        elif depthwise:
            q = _gptq_depthwise(flat, hessian, qmax)
            shift = ((q - flat) * mean).sum(axis=1)
            ratios.append(_ratio(*_error_depthwise(flat, hessian, qmax, q)))
        else:
            q = _gptq(flat, hessian, qmax)
            shift = (q - flat) @ mean
            ratios.append(_ratio(*_error_dense(flat, hessian, qmax, q)))
        inits[node.input[1]].CopyFrom(numpy_helper.from_array(q.reshape(w.shape).astype(np.float32), node.input[1]))
        inits[node.input[2]].CopyFrom(numpy_helper.from_array((b - shift).astype(np.float32), node.input[2]))
    return ratios


def _blas_threads(threads: int | None):
    """A context that limits NumPy's and SciPy's BLAS to ``threads`` (None: as many as it had).

    GPTQ's matrices are mostly small (a few hundred inputs) and come between ONNX Runtime runs: on the
    shared 2-core VM two OpenBLAS threads made a 232x232 Cholesky 3-20 ms instead of 0.3 ms on one, and
    their spinning takes cores from the next run (ShuffleNetV2 1.0x GPTQ step 5.9-7.1 s with two threads,
    2.4-2.9 s with one). Wide layers' second moments (``WIDE_INPUTS``) still gain from two threads:
    (12544 x 1152)^T (12544 x 1152) takes 174 ms on one, 96 ms on two. threadpoolctl comes with
    scikit-learn; without it nothing is limited."""
    try:
        controller, default = _blas_controller()
    except ImportError:  # pragma: no cover - scikit-learn depends on it
        return contextlib.nullcontext()
    return controller.limit(limits=threads or default, user_api="blas")


@functools.cache
def _blas_controller():
    """threadpoolctl's controller (made once: each one scans the loaded libraries) and BLAS's threads."""
    from threadpoolctl import ThreadpoolController

    controller = ThreadpoolController()
    threads = [lib["num_threads"] for lib in controller.info() if lib["user_api"] == "blas"]
    return controller, max(threads, default=1)


def _ratio(before: float, after: float) -> float:
    return after / before if before > 0 else 1.0


def _grid(w: np.ndarray, qmax: int) -> np.ndarray:
    """Per-row scale ``max|w| / qmax`` (1 for an all-zero row), shaped (rows, 1)."""
    absmax = np.abs(w).max(axis=1, keepdims=True)
    return np.where(absmax > 0, absmax / qmax, 1.0)


def _gptq(w: np.ndarray, hessian: np.ndarray, qmax: int) -> np.ndarray:
    """GPTQ for a dense layer: ``w`` (rows, D) on inputs with second moments ``hessian`` (D, D).

    Columns are rounded ``BLOCK`` at a time: the error of each column updates the rest of its block at
    once and the columns behind the block in one matrix product per block (the paper's lazy batch updates,
    the same result up to float rounding), so a wide layer streams its weights ``D / BLOCK`` times instead
    of ``D`` times. Works on the transpose, where a column of weights is a contiguous row."""
    scale = _grid(w, qmax)[:, 0]
    anchor = np.abs(w).argmax(axis=1)
    d = len(hessian)
    h = hessian + (DAMPING * np.mean(np.diag(hessian)) + 1e-12) * np.eye(d)
    u = _inverse_cholesky(h)
    work = w.T.copy()  # (D, rows)
    q = np.zeros_like(work)
    for start in range(0, d, BLOCK):
        stop = min(start + BLOCK, d)
        errors = np.empty((stop - start, work.shape[1]))
        for j in range(start, stop):
            q[j] = np.clip(np.round(work[j] / scale), -qmax, qmax) * scale
            errors[j - start] = (work[j] - q[j]) / u[j, j]
            work[j + 1 : stop] -= np.outer(u[j, j + 1 : stop], errors[j - start])
        work[stop:] -= u[start:stop, stop:].T @ errors
    q = q.T.copy()
    rows = np.arange(len(w))
    q[rows, anchor] = np.sign(w[rows, anchor]) * qmax * scale  # the weight that sets the scale keeps it
    return q


def _inverse_cholesky(h: np.ndarray) -> np.ndarray:
    """The upper triangular ``U`` with ``U^T U = h^-1`` (``h`` symmetric positive definite), without
    inverting ``h``: with ``J`` the reversal, ``J h J = M M^T`` gives ``h = V V^T`` for the upper ``V = J M J``,
    so ``U = V^-1`` (one Cholesky and one triangular inverse, a third of inverting first)."""
    from scipy.linalg import lapack

    v = np.linalg.cholesky(np.ascontiguousarray(h[::-1, ::-1]))[::-1, ::-1]
    u, info = lapack.dtrtri(np.asfortranarray(v), lower=0)
    if info != 0:
        raise np.linalg.LinAlgError(f"triangular inverse failed (LAPACK info {info})")
    return np.triu(u)


def _gptq_depthwise(w: np.ndarray, hessians: np.ndarray, qmax: int) -> np.ndarray:
    """GPTQ for depthwise filters: row ``c`` of ``w`` (C, k) with its own ``hessians[c]`` (k, k)."""
    scale = _grid(w, qmax)[:, 0]
    anchor = np.abs(w).argmax(axis=1)
    k = w.shape[1]
    damp = DAMPING * np.mean(np.diagonal(hessians, axis1=1, axis2=2), axis=1)[:, None, None]
    h = hessians + (damp + 1e-12) * np.eye(k)
    u = np.transpose(np.linalg.cholesky(np.linalg.inv(h)), (0, 2, 1))
    work = w.copy()
    q = np.zeros_like(w)
    for j in range(k):
        q[:, j] = np.clip(np.round(work[:, j] / scale), -qmax, qmax) * scale
        err = (work[:, j] - q[:, j]) / u[:, j, j]
        work[:, j + 1 :] -= err[:, None] * u[:, j, j + 1 :]
    rows = np.arange(len(w))
    q[rows, anchor] = np.sign(w[rows, anchor]) * qmax * scale
    return q


def _nearest(w: np.ndarray, qmax: int) -> np.ndarray:
    scale = _grid(w, qmax)
    return np.clip(np.round(w / scale), -qmax, qmax) * scale


def _error_dense(w, hessian, qmax, q) -> tuple[float, float]:
    def err(d):
        return float(np.sum((d @ hessian) * d))

    return err(_nearest(w, qmax) - w), err(q - w)


def _error_depthwise(w, hessians, qmax, q) -> tuple[float, float]:
    def err(d):
        return float(np.einsum("cj,cjk,ck->", d, hessians, d))

    return err(_nearest(w, qmax) - w), err(q - w)


def _input_statistics(model: onnx.ModelProto, layers, images_nchw: np.ndarray, seed: int,
                      ranges: RangePass | None = None, extra=None):
    """Per layer output name: ``(H, mean)`` of its input patches over the images, in the layout of its
    flattened weights (dense: (D, D) and (D,); depthwise: (C, k, k) and (C, k)); H is None for a layer
    with fewer than ``MIN_PATCHES_PER_INPUT`` patches per input. One observer pass, several images per
    run; each batch's patches go through one float32 matrix product per layer (summed in float64), which
    is exact enough for H (its damping is 1% of its mean diagonal). ``ranges`` gets every image's values of
    its tensors from the same runs."""
    images = np.asarray(images_nchw, dtype=np.float32)
    if ranges is None:
        images = images[:MAX_IMAGES]
    if len(images) == 0:
        raise ExportError("optimal weight rounding needs at least one calibration image")
    used = min(len(images), MAX_IMAGES)
    names = sorted({node.input[0] for node, _ in layers} | set(ranges.names if ranges else ()))
    rng = np.random.default_rng(seed)
    moments = {node.output[0]: _Moments(node, attrs, used) for node, attrs in layers}
    try:
        with ActivationObserver(model, names, optimization=PROBE_OPTIMIZATION,
                                extra=first_rows(extra, len(images))) as observer:
            start = 0
            for values in observer.iterate(images):
                count = len(next(iter(values.values())))
                if ranges is not None:
                    ranges.add(count, values)
                if start < used:
                    for node, _ in layers:
                        moments[node.output[0]].add(values[node.input[0]][:used - start], rng)
                start += count
    except ObservationError as exc:
        raise ExportError(f"optimal weight rounding could not run the calibration images ({exc.reason}); pass "
                          "images shaped like the model input (N, C, H, W)") from None
    return {key: m.result() for key, m in moments.items()}


class _Moments:
    """Running sums over one layer's input patches: ``x x^T`` (only for a layer GPTQ will round), ``x``
    and the patch count. A layer with at least ``MIN_PATCHES_PER_INPUT`` patches per input over the images
    gets sampled patches (``PATCHES_PER_INPUT`` per input, at most MAX_PATCHES_PER_IMAGE per image); the
    others only need their mean, taken over every position without copying a patch."""

    def __init__(self, node, attrs, images: int) -> None:
        self.attrs = attrs
        self.gemm = node.op_type == "Gemm"
        self.depthwise = not self.gemm and attrs.get("group", 1) > 1
        kh, kw = (1, 1) if self.gemm else attrs["kernel_shape"]
        self.inputs = None if self.gemm else kh * kw * (1 if self.depthwise else attrs["channels"])
        self.images = images
        self.gptq: bool | None = None  # decided on the first batch, which shows the positions per image
        self.xx, self.x, self.count = 0.0, 0.0, 0

    def add(self, value: np.ndarray, rng) -> None:
        if self.gemm:
            rows = value.reshape(-1, value.shape[-1])
            self.inputs = rows.shape[1]
            self.gptq = self.gptq if self.gptq is not None else self._enough(len(rows) // len(value))
            self._add_patches(rows)
            return
        kh, kw = self.attrs["kernel_shape"]
        sh, sw = self.attrs.get("strides", [1, 1])
        top, left, bottom, right = self.attrs.get("pads", [0, 0, 0, 0])
        positions = ((value.shape[2] + top + bottom - kh) // sh + 1) * ((value.shape[3] + left + right - kw) // sw + 1)
        limit = int(min(MAX_PATCHES_PER_IMAGE, -(-PATCHES_PER_INPUT * self.inputs // self.images)))
        if self.gptq is None:
            self.gptq = self._enough(min(limit, positions))
        if self.gptq:
            self._add_patches(_patches(_windows(value, self.attrs), self.depthwise, rng, limit))
            return
        per_channel = _window_sums(value, self.attrs)  # (C, kh, kw), no patch copied
        self.x = self.x + (per_channel.reshape(len(per_channel), -1) if self.depthwise else per_channel.reshape(-1))
        self.count += len(value) * positions

    def _enough(self, per_image: int) -> bool:
        return per_image * self.images >= MIN_PATCHES_PER_INPUT * self.inputs

    def _add_patches(self, patches: np.ndarray) -> None:
        count = patches.shape[1] if patches.ndim == 3 else patches.shape[0]
        if self.gptq:
            self.xx = self.xx + _second_moment(patches)
        # x summed over the patches by BLAS (a strided NumPy sum took longer than H)
        self.x = self.x + (np.ones(count, np.float32) @ patches).astype(np.float64)
        self.count += count

    def result(self) -> tuple[np.ndarray | None, np.ndarray]:
        return (self.xx / self.count if self.gptq else None), self.x / self.count


def _second_moment(patches: np.ndarray) -> np.ndarray:
    """``sum_p x_p x_p^T`` over the patches: dense (P, D) -> (D, D), depthwise (C, P, k) -> (C, k, k)."""
    if patches.ndim == 2:
        with _blas_threads(None if patches.shape[1] >= WIDE_INPUTS else 1):
            return (patches.T @ patches).astype(np.float64)  # NumPy takes A^T A to BLAS syrk
    return (patches.transpose(0, 2, 1) @ patches).astype(np.float64)


def _windows(x: np.ndarray, attrs) -> np.ndarray:
    """The conv's input windows of a batch, a view: (N, C, OH, OW, kh, kw)."""
    kh, kw = attrs["kernel_shape"]
    sh, sw = attrs.get("strides", [1, 1])
    top, left, bottom, right = attrs.get("pads", [0, 0, 0, 0])
    padded = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right))) if top or left or bottom or right else x
    return np.lib.stride_tricks.sliding_window_view(padded, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw]


def _window_sums(x: np.ndarray, attrs) -> np.ndarray:
    """Each window offset's sum over the images and output positions, per channel: (C, kh, kw), float64.
    The images are summed first (one pass over the batch), the offsets then over that one summed image."""
    total = _windows(x.sum(axis=0, dtype=np.float64)[None], attrs)[0]  # (C, OH, OW, kh, kw)
    return total.sum(axis=(1, 2))


def _patches(windows: np.ndarray, depthwise: bool, rng, limit: int) -> np.ndarray:
    """Input patches as the layer reads them, in one copy: dense (P, C*kh*kw) in OIHW-flattened order,
    depthwise (C, P, kh*kw) (channel first, as H is per channel). At most ``limit`` per image, sampled
    without replacement where an image has more."""
    n, c, oh, ow, kh, kw = windows.shape
    # (N, C, OH, OW, kh, kw) -> (N, P, C, kh, kw), or (C, N, P, kh, kw) for depthwise
    if oh * ow > limit:
        picks = np.stack([rng.choice(oh * ow, limit, replace=False) for _ in range(n)])
        images = np.arange(n)[:, None]
        if depthwise:
            p = windows.transpose(1, 0, 2, 3, 4, 5)[:, images, picks // ow, picks % ow]
        else:
            p = windows[images, :, picks // ow, picks % ow]
    else:
        p = windows.transpose(1, 0, 2, 3, 4, 5) if depthwise else windows.transpose(0, 2, 3, 1, 4, 5)
    if depthwise:
        return p.reshape(c, -1, kh * kw)
    return p.reshape(-1, c * kh * kw)
