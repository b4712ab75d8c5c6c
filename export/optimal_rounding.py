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

import copy
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import helper, numpy_helper

from edgekit.errors import ExportError
from edgekit.export.passes.graph_utils import tensor_reads

#: Damping added to H's diagonal, as a fraction of its mean (GPTQ's default): keeps H invertible when a
#: channel is constant or dead on the calibration images.
DAMPING = 0.01
#: Patches sampled per image and layer (all when fewer), and images used: second moments settle long
#: before (ShuffleNetV2 1.0x: the same logit cosine from 32 images as from 100).
MAX_PATCHES_PER_IMAGE = 1024
MAX_IMAGES = 64


@dataclass
class RoundingResult:
    """What ``round_weights_optimally`` did: layers rounded and the drop in their output error."""

    layers: int = 0
    skipped: list[str] = field(default_factory=list)
    #: Mean over layers of (output error with GPTQ) / (output error with nearest rounding), on H.
    mean_error_ratio: float = 1.0


def round_weights_optimally(
    model: onnx.ModelProto, images_nchw: np.ndarray, *, qmax: int = 127, seed: int = 0
) -> tuple[onnx.ModelProto, RoundingResult]:
    """A copy of the fp32 ``model`` whose Conv (plain, grouped-as-depthwise) and Gemm weights are already
    rounded to their symmetric per-channel grid (``max|w| / qmax``) by GPTQ on ``images_nchw``, biases
    corrected for the mean shift. ``qmax``: 127 for int8 weights, 64 for ONNX Runtime's ``reduce_range``.

    Layers whose weights or bias are not constants, shared, or whose kind is not handled are left as
    they are and named in ``RoundingResult.skipped``. Raises ``ExportError`` for images that do not fit.
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
            layers.append((node, attrs))
        else:
            result.skipped.append(node.name or node.output[0])
    if not layers:
        return out, result
    stats = _input_statistics(out, layers, images_nchw, seed)
    ratios = []
    for node, attrs in layers:
        w = numpy_helper.to_array(inits[node.input[1]]).astype(np.float64)
        b = numpy_helper.to_array(inits[node.input[2]]).astype(np.float64)
        hessian, mean = stats[node.output[0]]
        depthwise = node.op_type == "Conv" and attrs.get("group", 1) > 1
        flat = w.reshape(w.shape[0], -1)
        if depthwise:
            q = _gptq_depthwise(flat, hessian, qmax)
            shift = ((q - flat) * mean).sum(axis=1)
            before, after = _error_depthwise(flat, hessian, qmax, q)
        else:
            q = _gptq(flat, hessian, qmax)
            shift = (q - flat) @ mean
            before, after = _error_dense(flat, hessian, qmax, q)
        ratios.append(after / before if before > 0 else 1.0)
        inits[node.input[1]].CopyFrom(numpy_helper.from_array(q.reshape(w.shape).astype(np.float32), node.input[1]))
        inits[node.input[2]].CopyFrom(numpy_helper.from_array((b - shift).astype(np.float32), node.input[2]))
    result.layers = len(layers)
    result.mean_error_ratio = float(np.mean(ratios))
    return out, result


def _grid(w: np.ndarray, qmax: int) -> np.ndarray:
    """Per-row scale ``max|w| / qmax`` (1 for an all-zero row), shaped (rows, 1)."""
    absmax = np.abs(w).max(axis=1, keepdims=True)
    return np.where(absmax > 0, absmax / qmax, 1.0)


def _gptq(w: np.ndarray, hessian: np.ndarray, qmax: int) -> np.ndarray:
    """GPTQ for a dense layer: ``w`` (rows, D) on inputs with second moments ``hessian`` (D, D)."""
    scale = _grid(w, qmax)
    anchor = np.abs(w).argmax(axis=1)
    h = hessian + DAMPING * np.mean(np.diag(hessian)) * np.eye(len(hessian)) + 1e-12 * np.eye(len(hessian))
    u = np.linalg.cholesky(np.linalg.inv(h)).T  # upper: H^-1 = U^T U
    work = w.copy()
    q = np.zeros_like(w)
    for j in range(w.shape[1]):
        q[:, j] = np.clip(np.round(work[:, j] / scale[:, 0]), -qmax, qmax) * scale[:, 0]
        err = (work[:, j] - q[:, j]) / u[j, j]
        work[:, j + 1 :] -= np.outer(err, u[j, j + 1 :])
    rows = np.arange(len(w))
    q[rows, anchor] = np.sign(w[rows, anchor]) * qmax * scale[:, 0]  # the weight that sets the scale keeps it
    return q


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
        return float(np.einsum("ij,jk,ik->", d, hessian, d))

    return err(_nearest(w, qmax) - w), err(q - w)


def _error_depthwise(w, hessians, qmax, q) -> tuple[float, float]:
    def err(d):
        return float(np.einsum("cj,cjk,ck->", d, hessians, d))

    return err(_nearest(w, qmax) - w), err(q - w)


def probe_session(model: onnx.ModelProto, names: list[str]):
    """An ONNX Runtime CPU session of ``model`` that also outputs the tensors ``names`` (optimizations off,
    so every named tensor exists and a QDQ graph runs simulated in float)."""
    import onnxruntime as ort

    probe = copy.deepcopy(model)
    present = {o.name for o in probe.graph.output}
    for name in names:
        if name not in present:
            probe.graph.output.append(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(probe.SerializeToString(), options, providers=["CPUExecutionProvider"])


def _input_statistics(model: onnx.ModelProto, layers, images_nchw: np.ndarray, seed: int):
    """Per layer output name: ``(H, mean)`` of its input patches over the images, in the layout of its
    flattened weights (dense: (D, D) and (D,); depthwise: (C, k, k) and (C, k))."""
    images = np.asarray(images_nchw, dtype=np.float32)[:MAX_IMAGES]
    names = sorted({node.input[0] for node, _ in layers})
    try:
        session = probe_session(model, names)
        input_name = model.graph.input[0].name
        rng = np.random.default_rng(seed)
        sums: dict[str, list] = {}
        count = 0
        for image in images:
            values = dict(zip(names, session.run(names, {input_name: image[None]}), strict=True))
            for node, attrs in layers:
                patches = _patches(values[node.input[0]], node, attrs, rng)
                key = node.output[0]
                if node.op_type == "Conv" and attrs.get("group", 1) > 1:
                    h = np.einsum("pck,pcl->ckl", patches, patches)
                    m = patches.sum(axis=0)
                else:
                    h, m = patches.T @ patches, patches.sum(axis=0)
                total = sums.setdefault(key, [0.0, 0.0, 0])
                total[0] = total[0] + h
                total[1] = total[1] + m
                total[2] += len(patches)
            count += 1
    except Exception as exc:  # onnxruntime's errors (InvalidArgument, Fail) derive from Exception only
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExportError(f"optimal weight rounding could not run the calibration images ({first}); pass "
                          "images shaped like the model input (N, C, H, W)") from None
    if count == 0:
        raise ExportError("optimal weight rounding needs at least one calibration image")
    return {key: (h / n, m / n) for key, (h, m, n) in sums.items()}


def _patches(x: np.ndarray, node, attrs, rng) -> np.ndarray:
    """Input patches of one image as the layer reads them: dense (P, C*kh*kw) in OIHW-flattened order,
    depthwise (P, C, kh*kw); Gemm (rows, features). At most MAX_PATCHES_PER_IMAGE, sampled."""
    x = x.astype(np.float64)
    if node.op_type == "Gemm":
        return x.reshape(-1, x.shape[-1])
    _, c, _, _ = x.shape
    kh, kw = attrs.get("kernel_shape", None) or (1, 1)
    sh, sw = attrs.get("strides", [1, 1])
    top, left, bottom, right = attrs.get("pads", [0, 0, 0, 0])
    padded = np.pad(x[0], ((0, 0), (top, bottom), (left, right)))
    windows = np.lib.stride_tricks.sliding_window_view(padded, (kh, kw), axis=(1, 2))[:, ::sh, ::sw]
    # windows: (C, OH, OW, kh, kw) -> (P, C, kh*kw)
    p = windows.transpose(1, 2, 0, 3, 4).reshape(-1, c, kh * kw)
    if len(p) > MAX_PATCHES_PER_IMAGE:
        p = p[rng.choice(len(p), MAX_PATCHES_PER_IMAGE, replace=False)]
    if attrs.get("group", 1) > 1:
        return p
    return p.reshape(len(p), c * kh * kw)
