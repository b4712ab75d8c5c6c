"""``edgekit eval``: accuracy on labelled folders and the digits split, class-name mapping, bad input."""

import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from edgekit.cli import main
from edgekit.data.digits import digits_images
from edgekit.errors import DataError
from edgekit.evaluate import class_to_label_index, evaluate


def digits_folder(root, per_class=3, classes=None):
    images, labels = digits_images("heldout", (64, 64))
    names = classes or [str(d) for d in range(10)]
    for digit, name in enumerate(names):
        (root / name).mkdir(parents=True)
        for k, i in enumerate(np.flatnonzero(labels == digit)[:per_class]):
            image = Image.fromarray(images[i])
            (image.convert("L") if k == 0 else image).save(root / name / f"{i}.png")  # one grey per class
    return root


def test_class_names_map_to_labels_or_indices():
    labels = [str(d) for d in range(10)]
    assert class_to_label_index(["3", "7"], labels, 10, "m").tolist() == [3, 7]
    assert class_to_label_index(["0", "999"], None, 1000, "m").tolist() == [0, 999]
    with pytest.raises(DataError, match="not labels of m: cat"):
        class_to_label_index(["3", "cat"], labels, 10, "m")
    with pytest.raises(DataError, match="named by output index"):
        class_to_label_index(["n01440764"], None, 1000, "m")


def test_folder_accuracy_confusion_and_conversions(tmp_path):
    report = evaluate("shufflenet_v2_digits", digits_folder(tmp_path), batch_size=7)
    result = report.results[0]
    assert report.images == 30 and report.classes == [str(d) for d in range(10)]
    assert report.converted == {"L": 10}
    assert result.top1 >= 0.9 and result.top5 == 1.0
    confusion = np.asarray(result.confusion)
    assert confusion.shape == (10, 11) and confusion.sum() == 30 and np.trace(confusion) == round(30 * result.top1)
    assert [c.images for c in result.per_class] == [3] * 10


def test_subset_of_classes_counts_other_predictions(tmp_path):
    report = evaluate("shufflenet_v2_digits", digits_folder(tmp_path, classes=["0", "1"]), batch_size=4)
    assert report.classes == ["0", "1"] and report.images == 6
    assert np.asarray(report.results[0].confusion).shape == (2, 3)


def test_mismatched_class_names_fail_with_one_line(tmp_path):
    (tmp_path / "cat").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "cat" / "a.png")
    result = CliRunner().invoke(main, ["eval", "shufflenet_v2_digits", "--data", str(tmp_path)])
    assert result.exit_code == 2
    assert "class folder(s) are not labels of shufflenet_v2_digits: cat" in result.stderr
    assert "Traceback" not in result.output


def test_cli_compares_two_models_on_the_same_images(tmp_path):
    result = CliRunner().invoke(main, ["eval", "shufflenet_v2_digits", "--data", str(digits_folder(tmp_path, 1)),
                                       "--compare", "shufflenet_v2_digits", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["top1_drop"] == 0.0 and report["top1_agreement"] == 1.0
    assert "10/10 images (100%)" in result.stderr


NORMALIZED_NET = """
from torch import nn

def net():
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(4, 10))
"""


@pytest.mark.parametrize("fmt", ["onnx", "tflite"])
def test_an_exported_user_model_is_fed_with_the_normalisation_its_file_declares(tmp_path, fmt):
    # An ONNX file states its mean/std only in its input contract; read elsewhere, a user model's file was
    # fed ImageNet's normalisation, which the runtime then undid with the file's own (digits-trained
    # MobileNetV2 int8: top-1 97.83% against 99.33% from the same file fed its own).
    from edgekit.evaluate import _target
    from edgekit.export.request import ExportRequest, export

    (tmp_path / "nets.py").write_text(NORMALIZED_NET)
    mean, std = (0.3051,) * 3, (0.3247,) * 3
    result = export(ExportRequest(f"{tmp_path / 'nets.py'}:net", format=fmt, input_shape=(1, 3, 16, 16), mean=mean,
                                  std=std, output_dir=tmp_path / "out", check=False))
    target = _target(result.path)
    assert (target.mean, target.std) == (mean, std)
