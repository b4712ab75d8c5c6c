"""The export flags that declare what a file takes (--input, --io, --mean/--std, --no-normalization, --labels),
through the real CLI: what is refused in one line, and what the file then declares."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from edgekit.cli import main
from edgekit.export.metadata import read_metadata
from edgekit.export.tflite.support_metadata import read_associated_files, read_support_metadata
from edgekit.input_contract import METADATA_KEY, InputContract

TINY = '''
import torch
from torch import nn

def tiny():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(8, 4))
'''


def run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def one_error(result) -> str:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if "rror" in line]
    assert lines, result.output
    return lines[-1]


@pytest.fixture
def factory(tmp_path) -> str:
    path = tmp_path / "nets.py"
    path.write_text(TINY)
    return f"{path}:tiny"


def contract_of(path) -> InputContract:
    return InputContract.from_metadata(read_metadata(path)[METADATA_KEY])


def test_user_model_normalisation_is_assumed_with_a_notice_or_given(tmp_path, factory):
    out = tmp_path / "a"
    assumed = run("export", "--model", factory, "--input-shape", "1,3,16,16", "--output", str(out))
    assert assumed.exit_code == 0, assumed.output
    assert "assuming tiny normalises its input with ImageNet's mean" in assumed.stderr
    meta = read_metadata(out / "tiny.onnx")
    assert contract_of(out / "tiny.onnx").mean == (0.485, 0.456, 0.406)
    assert meta["weights_kind"] == "factory" and meta["shuffle_lowering"] == "none"

    given = run("export", "--model", factory, "--input-shape", "1,3,16,16", "--mean", "0.5", "--std", "0.25",
                "--output", str(tmp_path / "b"), "--json")
    assert given.exit_code == 0 and "assuming" not in given.stderr
    assert contract_of(tmp_path / "b" / "tiny.onnx").std == (0.25, 0.25, 0.25)
    # check rebuilds the reference with the normalisation the file declares (numbers, never code)
    check = run("check", str(tmp_path / "b" / "tiny.onnx"), "--model", factory, "--json")
    assert check.exit_code == 0 and json.loads(check.stdout)["passed"]

    none = run("export", "--model", factory, "--input-shape", "1,3,16,16", "--no-normalization",
               "--format", "tflite", "--output", str(tmp_path / "c"))
    assert none.exit_code == 0, none.output
    contract = contract_of(tmp_path / "c" / "tiny.tflite")
    assert (contract.mean, contract.std) == ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    meta = read_metadata(tmp_path / "c" / "tiny.tflite")
    assert meta["shuffle_lowering"] == "none" and meta["weights_kind"] == "factory"
    assert "lowered as" not in none.output and "channel shuffles: none found" in none.output
    assert "pixel - 128" not in none.output and "loses nothing" not in none.output  # fp32: no int8 notes


@pytest.mark.parametrize("args, needle", [
    (["--format", "onnx", "--int8", "--io", "int8"], "--io applies to --format tflite --int8"),
    (["--format", "tflite", "--int8", "--io", "float"], "--input bytes takes 8-bit pixels"),
    (["--format", "tflite", "--int8", "--input", "pixels", "--io", "uint8"], "--io uint8 carries bytes"),
    (["--format", "tflite", "--io", "uint8"], "--io apply to --int8 exports"),
    (["--mean", "0.5", "--std", "0.2"], "carries its own mean and std"),
    (["--mean", "0.5"], "pass --mean and --std together"),
    (["--mean", "x", "--std", "1", "--model", "IGNORED"], "is not a list of numbers"),
    (["--no-normalization", "--mean", "0.5", "--std", "1"], "exclude each other"),
    (["--format", "onnx", "--labels", "labels.txt"], "--labels applies to --format tflite"),
])
def test_contradictory_flags_are_one_line(tmp_path, args, needle):
    args = [a if a != "IGNORED" else "shufflenet_v2_digits" for a in args]
    if "--model" not in args:
        args = ["--model", "shufflenet_v2_digits", *args]
    result = run("export", *args, "--output", str(tmp_path / "o"))
    assert needle in one_error(result)
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def test_labels_file_is_packed_and_must_fit(tmp_path, factory):
    good, bad = tmp_path / "good.txt", tmp_path / "bad.txt"
    good.write_text("cat\ndog\nbird\nfish\n")
    bad.write_text("cat\ndog\n")
    base = ["export", "--model", factory, "--input-shape", "1,3,16,16", "--format", "tflite", "--mean", "0.5",
            "--std", "0.5"]
    refused = run(*base, "--labels", str(bad), "--output", str(tmp_path / "x"))
    assert "--labels has 2 labels but the model's output" in one_error(refused)
    assert not (tmp_path / "x").exists() or not any((tmp_path / "x").iterdir())
    done = run(*base, "--labels", str(good), "--output", str(tmp_path / "y"))
    assert done.exit_code == 0, done.output
    content = (tmp_path / "y" / "tiny.tflite").read_bytes()
    assert read_associated_files(content) == {"labels.txt": b"cat\ndog\nbird\nfish\n"}
    meta = read_support_metadata(content)
    options = meta["subgraph_metadata"][0]["input_tensor_metadata"][0]["process_units"][0]["options"]
    assert options == {"mean": [0.0], "std": [255.0]}  # uint8 bytes: the codes are the pixels
    missing = run(*base, "--labels", str(tmp_path / "nope.txt"), "--output", str(tmp_path / "z"))
    assert "cannot read --labels" in one_error(missing)
