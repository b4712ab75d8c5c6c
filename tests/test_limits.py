"""Absurd requests end in one line before any work: thread counts, sample counts and input shapes."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from edgekit import limits
from edgekit.cli import main
from edgekit.errors import DataError, EdgekitError
from edgekit.runtimes.base import check_threads


def test_threads_are_bounded_where_engines_would_crash():
    assert check_threads(limits.MAX_THREADS) == limits.MAX_THREADS
    for bad in (0, -1, limits.MAX_THREADS + 1, 100000, True, 2.0):
        with pytest.raises(EdgekitError, match="threads must be an integer from 1 to 256"):
            check_threads(bad)


def test_samples_are_bounded_and_their_memory_estimated(monkeypatch):
    limits.check_samples(8, (1, 3, 224, 224))
    for bad in (0, limits.MAX_SAMPLES + 1):
        with pytest.raises(DataError, match="--samples must be from 1"):
            limits.check_samples(bad, (1, 3, 224, 224))
    monkeypatch.setattr(limits, "available_memory_bytes", lambda: 1 << 30)
    limits.check_samples(100, (1, 3, 224, 224))  # 100 x 150,528 x 9 bytes = 0.13 GiB
    with pytest.raises(DataError, match=r"would need about 12\.6 GiB .* 1\.0 GiB available; pass fewer --samples"):
        limits.check_samples(10_000, (1, 3, 224, 224))


def test_input_shape_memory_is_estimated_before_building(monkeypatch):
    limits.check_input_memory((1, 3, 224, 224))
    with pytest.raises(DataError, match="pass a smaller --input-shape"):
        limits.check_input_memory((1, 3, 100_000, 100_000))
    monkeypatch.setattr(limits, "available_memory_bytes", lambda: None)  # unknown memory: no estimate to refuse on
    limits.check_input_memory((1, 3, 100_000, 100_000))


def test_cli_refuses_absurd_flags_in_one_line(tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["check", str(tmp_path / "m.onnx"), "--threads", "100000"])
    assert result.exit_code == 2 and "100000 is not in the range 1<=x<=256" in result.output
    factory = tmp_path / "nets.py"
    factory.write_text("raise SystemExit('the factory file must not even be imported')\n")
    result = runner.invoke(main, ["export", "--model", f"{factory}:make", "--input-shape", "1,3,100000,100000",
                                  "--output", str(tmp_path / "o")])
    assert result.exit_code == 2
    errors = [line for line in result.output.splitlines() if line.startswith("edgekit: error:")]
    assert len(errors) == 1 and "pass a smaller --input-shape" in errors[0]
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def test_per_layer_html_to_an_unwritable_place_fails_before_the_work(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    result = CliRunner().invoke(main, ["check", str(tmp_path / "missing.onnx"), "--per-layer",
                                       "--html", str(blocker / "x.html")])
    # the output check comes first: the missing model file is never even opened
    assert result.exit_code == 2 and f"cannot write --html {blocker / 'x.html'}" in result.output
