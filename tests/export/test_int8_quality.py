"""int8 quality of the default TFLite and ONNX exports of the untrained ShuffleNetV2 1.0x, against PyTorch.

Same measurement as benchmarks/int8_quality.py: mean logit cosine on 200 bundled crops (seed 0), calibrated
on 100 other crops. Measured with the defaults (pixel input, cross-layer equalization, GPTQ rounding, bias
correction): TFLite 0.9852 (0.9844 before both formats ran the steps in one order), ONNX Runtime 0.9851
(0.9842 before each Concat shared one scale); plain post-training quantization gives 0.9821 and 0.9821, the
peers 0.982-0.984 (issue 5). On a CPU
without int8 dot products the ONNX export has 7-bit weights (reduce_range): measured 0.9824 with the
defaults, 0.9781 plain. The thresholds sit between the two, so a step that stops working fails.
"""

import numpy as np
import pytest

from edgekit.check import compare_outputs
from edgekit.data import bundled_images, preprocess
from edgekit.export.onnx_int8 import export_onnx_int8
from edgekit.export.tflite_export import export_tflite
from edgekit.models import resolve
from edgekit.runtimes import open_runtime

MIN_COSINE = 0.983
MIN_COSINE_7BIT_WEIGHTS = 0.980


@pytest.fixture(scope="module")
def reference():
    handle = resolve("shufflenet_v2_x1_0")
    x = preprocess(bundled_images(200, size=(224, 224), seed=0), handle.mean, handle.std, 3)
    with open_runtime(handle, threads=2) as rt:
        return x, rt.run(x)[0]


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["tflite", "onnx"])
def test_default_int8_beats_plain_quantization(reference, tmp_path, fmt):
    x, ref = reference
    if fmt == "tflite":
        result = export_tflite("shufflenet_v2_x1_0", int8=True, output_dir=tmp_path, check=False)
    else:
        result = export_onnx_int8("shufflenet_v2_x1_0", output_dir=tmp_path, check=False)
    with open_runtime(result.path, threads=2) as rt:
        logits = np.concatenate([rt.run(x[i : i + 50])[0] for i in range(0, len(x), 50)])
    threshold = MIN_COSINE_7BIT_WEIGHTS if fmt == "onnx" and result.reduce_range else MIN_COSINE
    assert compare_outputs("logits", ref, logits).cosine >= threshold
    notes = " ".join(result.notes)
    assert "GPTQ" in notes and "cross-layer equalization" in notes and "biases corrected" in notes
