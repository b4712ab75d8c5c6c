"""The CLI's contract for bad input: one line on stderr, a non-zero exit, no traceback, nothing written."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from edgekit.cli import main


def run_cli(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def assert_one_line_error(result, *needles: str, code: int = 2):
    assert result.exit_code == code, result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("edgekit: error:")]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in lines[0], lines[0]


TINY_FACTORY = textwrap.dedent(
    """
    import torch.nn as nn

    def tiny():
        return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                             nn.Linear(4, 10))

    def broken():
        raise ValueError("no weights for you")

    def not_a_module():
        return 42

    import torch

    class Unexportable(nn.Module):
        def forward(self, x):  # runs in PyTorch, has no ONNX symbolic
            return torch.special.bessel_j0(x).flatten(1)[:, :10]

    def unexportable():
        return Unexportable()
    """
)


@pytest.fixture
def factory_file(tmp_path):
    path = tmp_path / "user_models.py"
    path.write_text(TINY_FACTORY)
    return path


def test_unknown_model_lists_known_names(tmp_path):
    result = run_cli("export", "--model", "resnet9000", "--output", str(tmp_path / "o"))
    assert_one_line_error(result, "resnet9000", "shufflenet_v2_x1_0")
    assert not (tmp_path / "o").exists() or list((tmp_path / "o").iterdir()) == []


def test_weights_that_are_not_a_state_dict(tmp_path):
    bad = tmp_path / "notes.pth"
    bad.write_text("these are not weights")
    result = run_cli("export", "--model", "shufflenet_v2_x0_5", "--weights", str(bad), "--output", str(tmp_path))
    assert_one_line_error(result, "notes.pth")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.pth"]


def test_pickle_with_code_is_refused_not_executed(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (Path.touch, (marker,))

    evil = tmp_path / "evil.pth"
    torch.save({"conv1.0.weight": Evil()}, evil)
    result = run_cli("export", "--model", "shufflenet_v2_x0_5", "--weights", str(evil), "--output", str(tmp_path))
    assert_one_line_error(result, "evil.pth")
    assert not marker.exists()


def test_wrong_architecture_names_first_mismatch(tmp_path):
    other = tmp_path / "other.pth"
    torch.save(torch.nn.Linear(3, 4).state_dict(), other)
    result = run_cli("export", "--model", "shufflenet_v2_x0_5", "--weights", str(other), "--output", str(tmp_path))
    assert_one_line_error(result)
    assert "weight" in result.stderr or "bias" in result.stderr or "conv1" in result.stderr


@pytest.mark.parametrize("content", [b"", b"\x08\x07garbage" * 10])
def test_corrupt_onnx_is_one_line(tmp_path, content):
    path = tmp_path / "model.onnx"
    path.write_bytes(content)
    result = run_cli("check", str(path), "--model", "shufflenet_v2_x0_5")
    assert_one_line_error(result, "model.onnx")


def test_corrupt_tflite_is_one_line(tmp_path):
    path = tmp_path / "model.tflite"
    path.write_bytes(b"TFL3" + b"\x00" * 13)
    result = run_cli("check", str(path), "--model", "shufflenet_v2_x0_5")
    assert_one_line_error(result, "model.tflite")


def test_missing_file(tmp_path):
    result = run_cli("check", str(tmp_path / "nope.onnx"))
    assert_one_line_error(result, "nope.onnx")


def test_factory_that_raises(tmp_path, factory_file):
    result = run_cli("export", "--model", f"{factory_file}:broken", "--input-shape", "1,3,32,32",
                     "--output", str(tmp_path / "o"))
    assert_one_line_error(result, "broken", "no weights for you")


def test_factory_that_returns_something_else(tmp_path, factory_file):
    result = run_cli("export", "--model", f"{factory_file}:not_a_module", "--input-shape", "1,3,32,32",
                     "--output", str(tmp_path / "o"))
    assert_one_line_error(result, "not_a_module")


def test_missing_factory_file(tmp_path):
    result = run_cli("export", "--model", f"{tmp_path}/absent.py:make", "--input-shape", "1,3,32,32")
    assert_one_line_error(result, "absent.py")


def test_bad_input_shape_text():
    result = run_cli("export", "--model", "x.py:f", "--input-shape", "1,three,224")
    assert result.exit_code == 2 and "input-shape" in result.output.lower()


def test_unwritable_output_directory():
    result = run_cli("export", "--model", "shufflenet_v2_x0_5", "--output", "/proc/edgekit-out")
    assert_one_line_error(result, "/proc/edgekit-out", "--output")


def test_failed_export_leaves_nothing(tmp_path, factory_file):
    out = tmp_path / "o"
    result = run_cli("export", "--model", f"{factory_file}:unexportable", "--input-shape", "1,3,32,32",
                     "--output", str(out))
    assert_one_line_error(result, "bessel_j0")
    assert list(out.iterdir()) == []


def test_user_factory_exports_and_checks(tmp_path, factory_file):
    out = tmp_path / "o"
    result = run_cli("export", "--model", f"{factory_file}:tiny", "--input-shape", "1,3,32,32", "--output", str(out))
    assert result.exit_code == 0, result.output
    files = sorted(p.name for p in out.iterdir())
    assert files == ["tiny.html", "tiny.json", "tiny.onnx"]
    # The file names its factory, but a file never chooses code to run: the user passes --model themselves.
    refused = run_cli("check", str(out / "tiny.onnx"))
    assert refused.exit_code == 2 and "pass --model" in refused.output
    check = run_cli("check", str(out / "tiny.onnx"), "--model", f"{factory_file}:tiny", "--json")
    assert check.exit_code == 0, check.output
    assert '"passed": true' in check.stdout


def test_image_folder_without_images(tmp_path, factory_file):
    empty = tmp_path / "imgs"
    empty.mkdir()
    (empty / "readme.txt").write_text("no images here")
    out = tmp_path / "o"
    result = run_cli("export", "--model", f"{factory_file}:tiny", "--input-shape", "1,3,32,32",
                     "--data", str(empty), "--output", str(out))
    assert_one_line_error(result, "imgs")
    assert list(out.iterdir()) == []


def test_unreadable_images_are_skipped_and_counted(tmp_path, factory_file):
    from PIL import Image

    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(3):
        Image.new("RGB", (40, 30), (i * 60, 100, 200 - i * 50)).save(folder / f"ok{i}.png")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    out = tmp_path / "o"
    assert run_cli("export", "--model", f"{factory_file}:tiny", "--input-shape", "1,3,32,32", "--no-check",
                   "--output", str(out)).exit_code == 0
    result = run_cli("check", str(out / "tiny.onnx"), "--model", f"{factory_file}:tiny", "--data", str(folder),
                     "--json")
    assert result.exit_code == 0, result.output
    assert '"skipped_images": 1' in result.stdout and '"samples": 3' in result.stdout


def test_installed_console_script_reports_errors_in_one_line(tmp_path):
    exe = Path(sys.executable).with_name("edgekit")
    proc = subprocess.run([str(exe), "check", str(tmp_path / "nothing.onnx")], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "nothing.onnx" in proc.stderr


def test_a_missing_data_folder_fails_before_the_export_work(tmp_path):
    out = tmp_path / "o"
    result = run_cli("export", "--model", "shufflenet_v2_digits", "--data", str(tmp_path / "nope"),
                     "--output", str(out))
    assert_one_line_error(result, "nope")
    assert "it does not exist" in result.output and "exporting" not in result.output
    assert not out.exists()
