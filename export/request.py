"""What to export, as two dataclasses that refuse impossible combinations themselves, and one ``export()``.

``ExportRequest`` says which model goes to which file (format, input contract, weights, where, whether to
check parity); ``Int8Recipe`` (present for int8 files) says how it is quantized. The CLI maps its flags onto
them and calls ``export``; a notebook does the same::

    from edgekit.export.request import ExportRequest, Int8Recipe, export
    result = export(ExportRequest("shufflenet_v2_x1_0", format="tflite", int8=Int8Recipe(calib=200)))
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from edgekit.errors import ExportError
from edgekit.export.activation_ranges import RANGE_METHODS
from edgekit.export.onnx_export import refuse_int8_extra_inputs
from edgekit.input_contract import DEFAULT_INPUT, resolve_io

FORMATS = ("onnx", "tflite")


@dataclass(frozen=True)
class Int8Recipe:
    """How an int8 file is quantized. Every step is on unless switched off.

    ``calib``: the calibration set (``edgekit.data.calibration_set``: None, N bundled crops, ``digits[:N]``
    or an image folder). ``calib_method``: None for the format's best measured method (percentile), else
    ``minmax|percentile|mse`` (``activation_ranges.RANGE_METHODS``, both formats). ``target_cpu`` (ONNX only): the
    CPU whose int8 kernels the weights are sized for. ``io`` (TFLite only): the edge types
    (``input_contract.IO_TYPES``; None follows the input kind). ``fold_normalization`` (ONNX only; TFLite
    folds whenever the input is bytes or pixels): the normalisation folded into the first convolution.
    ``float_first_layers``: where the all-int8 graph misses ``float_first_layers.TARGET_COSINE`` against fp32
    on the calibration images, its first layers stay in float (both formats; as few as reach it).
    """

    calib: str | int | None = None
    calib_method: str | None = None
    equalize: bool = True
    optimal_rounding: bool = True
    bias_correction: bool = True
    float_first_layers: bool = True
    fold_normalization: bool = True
    target_cpu: str | None = None
    io: str | None = None


@dataclass(frozen=True)
class ExportRequest:
    """One file to export: ``model`` (registry name or ``file.py:factory``) as ``format`` (``onnx`` or
    ``tflite``), int8 when ``int8`` holds a recipe. ``input_kind`` is the file's input contract (``bytes``,
    ``pixels``, ``normalized``); ``extra_input_shapes`` a user factory's inputs after the image and ``extra_data``
    an ``.npz`` of their values (for the parity check; int8 needs it to calibrate them);
    ``mean``/``std`` a user factory's normalisation; ``labels`` (TFLite) the class
    names packed into the standard metadata. ``shuffle_lowering``/``opset`` None take the format's default
    (``opset`` is ONNX only). ``check`` proves parity on ``samples`` images from ``data`` before the file
    appears. Raises ``ExportError`` (one line) for a combination that cannot be.
    """

    model: str = "shufflenet_v2_x1_0"
    format: str = "onnx"
    int8: Int8Recipe | None = None
    input_kind: str = DEFAULT_INPUT
    weights: str | Path | None = None
    pretrained: bool = False
    input_shape: tuple[int, ...] | None = None
    extra_input_shapes: tuple[tuple[int, ...], ...] = ()
    extra_data: str | Path | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    labels: list[str] | None = field(default=None, hash=False)
    output_dir: str | Path = "edgekit-out"
    shuffle_lowering: str | None = None
    opset: int | None = None
    check: bool = True
    data: str | Path | None = None
    samples: int = 8

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise ExportError(f"unknown format {self.format!r}; choose one of {', '.join(FORMATS)}")
        tflite, recipe = self.format == "tflite", self.int8
        if self.opset is not None and tflite:
            raise ExportError("--opset applies to --format onnx only")
        if self.labels is not None and not tflite:
            raise ExportError("--labels applies to --format tflite (its standard metadata carries labels)")
        if self.weights is not None and self.pretrained:
            raise ExportError("pass --weights FILE or --pretrained, not both")
        if (self.mean is None) != (self.std is None):
            raise ExportError("pass --mean and --std together (or --no-normalization)")
        if recipe is None:
            resolve_io(self.input_kind, None, int8=False)
            return
        refuse_int8_extra_inputs(True, self.extra_input_shapes, self.extra_data)
        if recipe.target_cpu is not None and tflite:
            raise ExportError("--target-cpu applies to --format onnx --int8")
        if recipe.io is not None and not tflite:
            raise ExportError("--io applies to --format tflite --int8 (other files' input type follows --input)")
        resolve_io(self.input_kind, recipe.io if tflite else None, int8=True)
        if recipe.calib_method is not None and recipe.calib_method not in self.calib_methods:
            raise ExportError(f"--calib-method {recipe.calib_method} is not available for {self.format} int8; "
                              f"choose one of {', '.join(self.calib_methods)}")
        if not tflite and self.input_kind != "normalized" and not recipe.fold_normalization:
            raise ExportError(f"--input {self.input_kind} needs the normalisation folded into the model; pass "
                              "--input normalized to keep it outside")

    @property
    def calib_methods(self) -> tuple[str, ...]:
        """The calibration methods this format's int8 quantizer offers: the shared estimator's, for both."""
        return RANGE_METHODS


def export(request: ExportRequest, progress=None):
    """Export as ``request`` says; returns the ``ExportResult`` (also written beside the file as JSON/HTML).

    Raises the exporters' ``EdgekitError`` subclasses; nothing is written on failure.
    """
    common = dict(weights=request.weights, pretrained=request.pretrained, input_shape=request.input_shape,
                  extra_input_shapes=request.extra_input_shapes, extra_data=request.extra_data,
                  output_dir=request.output_dir, check=request.check, data=request.data, samples=request.samples,
                  progress=progress, input_kind=request.input_kind, mean=request.mean, std=request.std)
    recipe = request.int8
    steps = {} if recipe is None else dict(equalize=recipe.equalize, optimal_rounding=recipe.optimal_rounding,
                                           bias_correction=recipe.bias_correction,
                                           float_first_layers=recipe.float_first_layers)
    if request.format == "tflite":
        from edgekit.export.tflite_export import DEFAULT_TFLITE_SHUFFLE, export_tflite

        if recipe is not None:
            steps.update(calib=recipe.calib, io=recipe.io, calib_method=recipe.calib_method or "percentile")
        return export_tflite(request.model, int8=recipe is not None, labels=request.labels,
                             shuffle_lowering=request.shuffle_lowering or DEFAULT_TFLITE_SHUFFLE, **steps, **common)
    from edgekit.export.onnx_export import DEFAULT_OPSET, DEFAULT_SHUFFLE_LOWERING, export_onnx

    if recipe is None:
        return export_onnx(request.model, shuffle_lowering=request.shuffle_lowering or DEFAULT_SHUFFLE_LOWERING,
                           opset=request.opset or DEFAULT_OPSET, **common)
    from edgekit.export.onnx_int8 import DEFAULT_CALIB_METHOD, INT8_SHUFFLE_LOWERING, export_onnx_int8

    return export_onnx_int8(request.model, calib=recipe.calib, calib_method=recipe.calib_method or DEFAULT_CALIB_METHOD,
                            target_cpu=recipe.target_cpu, fold_normalization=recipe.fold_normalization,
                            shuffle_lowering=request.shuffle_lowering or INT8_SHUFFLE_LOWERING,
                            opset=request.opset or DEFAULT_OPSET, **steps, **common)
