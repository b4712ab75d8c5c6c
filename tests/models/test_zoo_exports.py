"""Every zoo model through all four exports (ONNX fp32, ONNX int8, TFLite fp32, TFLite int8) with the real API.

Each model gets edgekit's deterministic init once (``create``: seeded weights, BatchNorm statistics calibrated
on bundled photos), saved as a state-dict file that every export of it loads with ``weights=``. Asserted per
export:
fp32 parity passes (the exporter's own check; it raises ``ParityError`` otherwise), int8 cosine >= 0.98 on
every output (from the export's parity report; ``INT8_SHORT`` lists the measured misses), one XNNPACK
partition for TFLite fp32 and int8 unless the file holds an op XNNPACK does not take, and no layout transpose
in a TFLite file of a pure CNN. Inputs are each model's registered shape (224 or 256): smaller ones measure
the resolution rather than the export (MobileNetV2's TFLite int8 cosine was 0.974 at 224 and 0.943 at 128,
with BatchNorm calibrated at either size). 4 parity samples and 32 calibration images keep the int8 work
small. ``FAST`` runs in ``make test``; the rest of the zoo is
marked ``zoo`` (``make test-zoo``, about 18 min on 2 cores), which ``make test`` leaves out.

The misses in ``INT8_SHORT`` are those of the BN-calibrated random init: trained on the digits, the same
architectures (64x64, 10 classes) export with every layer int8 at cosine 0.9988-0.9999
(``benchmarks/int8_trained_vs_init.py``;
``tests/benchmarks/test_int8_trained_vs_init.py`` checks MobileNetV2 in the ``zoo`` run).
"""

from __future__ import annotations

import pytest
import torch

from edgekit.export.request import ExportRequest, Int8Recipe, export
from edgekit.models import create
from edgekit.models.registry import model_info

ZOO = (
    "mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large", "resnet18", "resnet50", "efficientnet_b0",
    "efficientnet_lite0", "mnasnet1_0", "ghostnet", "regnet_y_400mf", "squeezenet1_1", "unet_small",
    "deeplabv3_mobilenet", "yolo_tiny", "convnext_atto", "mobilevit_xxs",
)
#: Small models in the default run: squeeze-excite with hard-sigmoid/hard-swish, ceil-mode pooling, and a
#: two-output net with nearest upsampling.
FAST = ("mobilenet_v3_small", "squeezenet1_1", "yolo_tiny")
EXPORTS = ("onnx-fp32", "onnx-int8", "tflite-fp32", "tflite-int8")
SAMPLES = 4
CALIB = 32
MIN_INT8_COSINE = 0.98
#: TFLite ops the XNNPACK delegate of this LiteRT leaves to the builtin kernels (each splits the delegated
#: graph): issue 13 saw a second partition wherever litert-torch emitted PADV2 or RESIZE_NEAREST_NEIGHBOR.
NOT_XNNPACK = frozenset({"PADV2", "RESIZE_NEAREST_NEIGHBOR", "GATHER", "GATHER_ND", "CAST"})

#: int8 exports measured below ``MIN_INT8_COSINE`` on the BN-calibrated init (parity cosine on the SAMPLES images,
#: 2026-12-02), with the first layers in float as far as ``float_first_layers.MAX_FLOAT_MACS`` allows, and the
#: measured cause (per-tensor SQNR of the int8 TFLite graph against fp32 on 4 crops).
#: The SQNR lost per block is the fp32 network's own gain, not the quantizer's: the BN-calibrated random weights
#: amplify any perturbation (PyTorch fp32, 16 bundled crops, 1% Gaussian noise added once after the stem):
#: MobileNetV2 to 69% relative error after its last block (~2 dB per block) and logit cosine 0.982 from that one
#: noise source, MobileNetV3-Large 25% / 0.995, EfficientNet-B0 18% / 0.998, ShuffleNetV2 1.0x 44% / 0.993 (it
#: passes with fewer layers); the same noise added after block 9 of MobileNetV2 costs 0.9998. Post-training steps
#: measured against it and not kept (ONNX QDQ float-simulated, 32 calibration crops, logit cosine on 16 other
#: crops, all int8, MobileNetV2 / EfficientNet-B0): empirical sequential bias correction of activation
#: quantization 0.9751 -> 0.9741 / 0.9399 -> 0.9116 (0.948 -> 0.921 on its own calibration crops); least-squares
#: refit of each layer's weights on its quantized inputs 0.9751 -> 0.60-0.88 (those inputs are 30-75% noise deep
#: in the net, so the refit shrinks the signal); percentile 99.99 / 99.999 / mse instead of 99.997 within 0.001;
#: the float prefix chosen on 32 images instead of 16: the same 0.9799 / 0.9791 (zoo test); float layers picked by
#: per-tensor sensitivity within the same 15% budget instead of a prefix: +0.0007 / +0.0037. EfficientNet-B0 with
#: every Sigmoid and Mul output in float still reaches only 0.952.
INT8_SHORT: dict[tuple[str, str], str] = {
    # On the line (MobileNetV2 passes since the ranges ride on GPTQ's pass: 0.98007 ONNX, 0.98109 TFLite; it
    # was 0.9799 / 0.9791, the float prefix chosen on 16 images moving with a range's last histogram bin).
    ("mobilenet_v3_large", "onnx"): "0.979 with the first 6 convolutions float (13.8% of the MACs; TFLite 0.982)",
    ("mnasnet1_0", "onnx"): "0.979 with the first 8 convolutions float (13.7%); TFLite reaches 0.981 with the same 8",
    ("efficientnet_b0", "onnx"): "0.958; the first 10 convolutions float (13.0%) took 1.5% off the error on the "
                                 "calibration images (0.94501 -> 0.94581), too little to keep (MIN_ERROR_CUT)",
    ("efficientnet_b0", "tflite"): "0.962; the first 8 layers float (11.1%) reach 0.957 on 16 crops: SQNR falls "
                                   "1-3 dB per block from 35 dB after the stem, no op stands out",
    ("mobilevit_xxs", "onnx"): "0.963 with the first 4 convolutions float (14.6%; TFLite 0.981)",
    ("deeplabv3_mobilenet", "onnx"): "parity fails at 0.76: SQNR falls ~1.4 dB per inverted-residual block over "
                                     "17 blocks at 1/8 resolution, no op stands out (litert-torch: 0.59)",
    ("deeplabv3_mobilenet", "tflite"): "parity fails at 0.71: as ONNX, ~1.4 dB lost per block over 17 blocks",
}

_weights: dict[str, str] = {}


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("zoo-weights")


def _weights_file(name: str, directory) -> str:
    # One BN-calibrated init per model per session, shared by its four exports.
    if name not in _weights:
        path = directory / f"{name}.pt"
        torch.save(create(name).state_dict(), path)
        _weights[name] = str(path)
    return _weights[name]


def _cases():
    for name in ZOO:
        marks = () if name in FAST else (pytest.mark.zoo,)
        for kind in EXPORTS:
            fmt, precision = kind.split("-")
            short = INT8_SHORT.get((name, fmt)) if precision == "int8" else None
            extra = (pytest.mark.xfail(reason=f"int8 cosine measured {short}", strict=False),) if short else ()
            yield pytest.param(name, kind, id=f"{name}-{kind}", marks=marks + extra)


@pytest.mark.parametrize("name,kind", list(_cases()))
def test_zoo_export(name, kind, weights_dir, tmp_path, record_property):
    fmt, precision = kind.split("-")
    int8 = precision == "int8"
    request = ExportRequest(
        name,
        format=fmt,
        int8=Int8Recipe(calib=CALIB) if int8 else None,
        weights=_weights_file(name, weights_dir),
        input_shape=model_info(name).input_shape,
        output_dir=tmp_path,
        samples=SAMPLES,
    )
    result = export(request)  # raises ParityError (fp32 and int8 alike) when the file fails its check
    parity = result.parity
    # In the junit XML (--junitxml) for the zoo's pass/fail table.
    record_property("cosine", {o.name: round(o.cosine, 5) for o in parity.outputs} if parity else None)
    record_property("xnnpack_partitions", result.xnnpack_partitions)
    record_property("layout_transposes", result.layout_transposes)
    record_property("not_xnnpack_ops", sorted(set(result.op_histogram) & NOT_XNNPACK))
    assert parity is not None and parity.passed, parity.failures
    if int8:
        cosines = {o.name: o.cosine for o in parity.outputs}
        assert min(cosines.values()) >= MIN_INT8_COSINE, cosines
    if fmt == "tflite":
        ops = set(result.op_histogram)
        # int8 too: its float islands (op kinds XNNPACK runs in float only, norms, float first layers) run
        # between DEQUANTIZE and QUANTIZE inside the partition
        if not ops & NOT_XNNPACK:
            assert result.xnnpack_partitions == 1, sorted(ops)
        if model_info(name).pure_cnn:
            assert result.layout_transposes == 0
