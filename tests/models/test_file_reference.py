"""A model file's metadata selects among registry names only: it never imports code or starts a download.

Unit tests of ``reference_for_file``, then the real CLI against files whose edgekit metadata names a
Python file that leaves a marker when imported, ``os:abort`` (which would kill the CLI) and pretrained
weights (which would start a download).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from edgekit.errors import DataError, UnknownModelError, WeightsError
from edgekit.export.metadata import onnx_metadata_props
from edgekit.export.tflite.ir import Graph, Op, Tensor
from edgekit.export.tflite.writer import write_tflite
from edgekit.models.file_reference import printable, reference_for_file

EDGEKIT = Path(sys.executable).with_name("edgekit")


def test_registry_name_from_the_file_is_used():
    ref = reference_for_file("m.onnx", {"model": "shufflenet_v2_digits", "input_shape": "1,1,32,32"})
    assert ref.spec == "shufflenet_v2_digits" and ref.from_file and not ref.pretrained
    assert ref.input_shape == (1, 1, 32, 32)


@pytest.mark.parametrize("named", ["/tmp/evil.py:make", "os:abort", "evil.py:make", "pkg.mod:factory", "x/y.py"])
def test_a_factory_or_path_named_by_the_file_is_refused(named):
    with pytest.raises(UnknownModelError, match="never runs code a file names: pass --model"):
        reference_for_file("m.onnx", {"model": named})


def test_an_unknown_name_in_the_file_is_refused():
    with pytest.raises(UnknownModelError, match="not in edgekit's registry"):
        reference_for_file("m.onnx", {"model": "no_such_net"})


def test_the_users_model_wins_and_is_not_from_the_file():
    ref = reference_for_file("m.onnx", {"model": "os:abort"}, model="shufflenet_v2_x0_5")
    assert ref.spec == "shufflenet_v2_x0_5" and not ref.from_file


def test_pretrained_weights_in_the_file_need_the_users_flag():
    meta = {"model": "shufflenet_v2_x1_0", "weights_kind": "pretrained"}
    with pytest.raises(WeightsError, match="pass --pretrained"):
        reference_for_file("m.onnx", meta)
    assert reference_for_file("m.onnx", meta, pretrained=True).pretrained
    assert not reference_for_file("m.onnx", meta, weights="w.pth").pretrained


def test_a_damaged_input_shape_in_the_file_is_one_line():
    for text in ("1,3,224", "a,b,c,d", "1,3,0,224", "1,3,100000,100000"):
        with pytest.raises(DataError, match="pass --input-shape"):
            reference_for_file("m.onnx", {"model": "shufflenet_v2_x1_0", "input_shape": text})


def test_text_from_a_file_is_printed_without_terminal_escapes():
    assert printable("evil\x1b[2J\x07.py:make\nx") == "evil [2J .py:make x"
    assert len(printable("a" * 500)) == 120


def onnx_file(path: Path, fields: dict[str, str]) -> Path:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 8, 8])
    model = helper.make_model(helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y]),
                              opset_imports=[helper.make_opsetid("", 17)])
    for key, value in onnx_metadata_props(fields):
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(path))
    return path


def tflite_file(path: Path, fields: dict[str, str]) -> Path:
    graph = Graph(tensors={"x": Tensor("x", (1, 8, 8, 3), "float32"), "y": Tensor("y", (1, 8, 8, 3), "float32")},
                  ops=[Op("RELU", ["x"], ["y"])], inputs=["x"], outputs=["y"])
    path.write_bytes(write_tflite(graph, metadata=fields))
    return path


@pytest.fixture
def evil_factory(tmp_path) -> tuple[str, Path]:
    marker = tmp_path / "imported.marker"
    source = tmp_path / "evil.py"
    source.write_text(f"open({str(marker)!r}, 'w').write('ran')\nimport torch\ndef make():\n"
                      "    return torch.nn.Identity()\n")
    return f"{source}:make", marker


def run_cli(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(EDGEKIT), *argv], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("write", [onnx_file, tflite_file], ids=["onnx", "tflite"])
def test_check_never_imports_a_factory_a_file_names(tmp_path, evil_factory, write):
    spec, marker = evil_factory
    suffix = ".onnx" if write is onnx_file else ".tflite"
    path = write(tmp_path / f"m{suffix}", {"model": spec, "input_shape": "1,3,8,8", "weights_kind": "deterministic"})
    for extra in ([], ["--per-layer"]):
        done = run_cli("check", str(path), *extra)
        assert done.returncode == 2, done.stderr
        assert not marker.exists()
        assert "Traceback" not in done.stderr
        errors = [line for line in done.stderr.splitlines() if line.startswith("edgekit: error:")]
        assert len(errors) == 1
        if not extra:  # --per-layer refuses this float file even earlier, for having no int8 tensors
            assert "pass --model" in errors[0] and "never runs code" in errors[0]


def test_check_with_os_abort_in_the_metadata_is_refused_not_killed(tmp_path):
    done = run_cli("check", str(onnx_file(tmp_path / "m.onnx", {"model": "os:abort"})))
    assert done.returncode == 2 and "never runs code" in done.stderr


def test_check_never_downloads_pretrained_weights_unasked(tmp_path):
    path = onnx_file(tmp_path / "m.onnx", {"model": "shufflenet_v2_x1_0", "weights_kind": "pretrained"})
    done = run_cli("check", str(path))
    assert done.returncode == 2
    assert "pass --pretrained" in done.stderr and "download" not in done.stderr.split("pass --pretrained")[0]
    assert "downloading" not in done.stderr.lower()


def test_evaluate_reads_only_registry_facts_from_a_file(tmp_path, evil_factory):
    """``edgekit eval FILE`` takes labels/mean/std from the registry entry a file names, never its code."""
    from edgekit.evaluate import _target

    spec, marker = evil_factory
    target = _target(onnx_file(tmp_path / "m.onnx", {"model": spec, "input_shape": "1,3,8,8"}))
    assert not marker.exists() and target.labels is None
    assert np.prod(target.input_shape) == 192
