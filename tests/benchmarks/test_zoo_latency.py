"""The pure parts of benchmarks/zoo_latency.py: interleaving order, percentiles, targets, the zoo's default list
and the rendered table/page. The benchmark itself (exports, litert-torch, timing) is never part of make test."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def zoo(load_benchmark):
    return load_benchmark("zoo_latency")


class SteppedClock:
    """A clock that each invoker advances by its own fixed duration, so every timed call's length is known."""

    def __init__(self) -> None:
        self.now = 0.0
        self.calls: list[str] = []

    def __call__(self) -> float:
        return self.now

    def invoker(self, name: str, seconds: float):
        def invoke() -> None:
            self.calls.append(name)
            self.now += seconds

        return invoke


def test_interleaved_times_alternate_bursts_and_swap_order(zoo):
    clock = SteppedClock()
    invokers = {"a": clock.invoker("a", 0.002), "b": clock.invoker("b", 0.003)}
    times = zoo.interleaved_times(invokers, runs=12, burst=5, warmup=1, clock=clock, settle=0)
    # warm-up a, b; then bursts a5 b5 | b5 a5 | a2 b2 (the last round holds the remainder)
    assert "".join(clock.calls) == "ab" + "a" * 5 + "b" * 10 + "a" * 7 + "b" * 2
    assert times["a"] == pytest.approx([0.002] * 12)
    assert times["b"] == pytest.approx([0.003] * 12)


def test_each_burst_starts_with_untimed_settling_calls(zoo):
    clock = SteppedClock()
    invokers = {"a": clock.invoker("a", 0.002), "b": clock.invoker("b", 0.003)}
    times = zoo.interleaved_times(invokers, runs=7, burst=5, warmup=0, clock=clock, settle=1)
    # bursts (a)a5 (b)b5 | (b)b2 (a)a2: one untimed call each, never counted among the runs
    assert "".join(clock.calls) == "a" * 6 + "b" * 9 + "a" * 3
    assert len(times["a"]) == len(times["b"]) == 7


def test_spread_is_median_and_p10_p90_in_ms(zoo):
    s = zoo.spread([i / 1000 for i in range(1, 11)])  # 1..10 ms
    assert (s.median, s.runs) == (pytest.approx(5.5), 10)
    assert (s.p10, s.p90) == (pytest.approx(1.9), pytest.approx(9.1))
    with pytest.raises(ValueError):
        zoo.spread([])


@pytest.mark.parametrize(("ours", "theirs", "target"), [(0, 50, 0.9), (0, 0, 1.0), (3, 1, 1.0), (2, 2, 1.0),
                                                        (None, 5, 1.0)])
def test_target_is_stricter_only_where_the_peer_adds_transposes(zoo, ours, theirs, target):
    assert zoo.target_for(ours, theirs) == target


def test_default_models_are_the_zoo(zoo):
    names = ["augshufflenet_x1_0", "mobilenet_v2", "resnet18", "shufflenet_v2_digits", "shufflenet_v2_x0_5",
             "shufflenet_v2_x1_0"]
    families = {"augshufflenet_x1_0": "augshufflenet", "shufflenet_v2_digits": "shufflenetv2-digits",
                "shufflenet_v2_x0_5": "shufflenetv2", "shufflenet_v2_x1_0": "shufflenetv2"}
    assert zoo.default_models(names, families) == ["mobilenet_v2", "resnet18", "shufflenet_v2_x1_0"]


def _row(zoo, ratio: float, target: float) -> dict:
    facts = {"transposes": 0, "partitions": 1, "io": "uint8", "parity": {"max_abs": 2e-5, "cosine": 0.99}}
    peer = {"transposes": 4, "partitions": 2, "io": "float32", "parity": {"error": "2 outputs, PyTorch has 1"}}
    ms = {"median": 2.0, "p10": 1.5, "p90": 2.5, "runs": 10}
    return {"model": "m", "precision": "fp32", "threads": 1, "edgekit_ms": ms, "litert_torch_ms": {**ms, "p10": 2.0},
            "ratio": ratio, "target": target, "target_met": ratio <= target, "edgekit_export_s": 3.0,
            "litert_torch_export_s": 4.25, "edgekit": facts, "litert_torch": peer}


def test_table_marks_a_missed_target_and_shows_both_sides(zoo):
    met, missed = zoo.table_rows([_row(zoo, 0.85, 0.9), _row(zoo, 0.95, 0.9)])
    assert met[5:9] == ["0.850x", "<=0.9x", "0.750x", "3.0/4.2"] and missed[6] == "<=0.9x miss"
    assert met[9:12] == ["0/4", "1/2", "uint8/float32"]
    assert met[12] == "2.0e-05 | 2 outputs, PyTorch has 1"


def test_html_page_has_the_chart_the_table_and_what_was_not_measured(zoo):
    record = {"threads": [1], "note": "n", "results": [_row(zoo, 0.85, 0.9)],
              "skipped": ["unet_small fp32: edgekit: ExportError: Resize <cannot lower>"]}
    text = zoo.html_page(record)
    assert "<svg" in text and "0.850x" in text and "fp32 1t" in text
    assert "Resize &lt;cannot lower&gt;" in text


def test_table_names_the_float_prefix_of_an_int8_file_and_only_there(zoo):
    fp32 = _row(zoo, 0.95, 1.0)
    int8 = {**_row(zoo, 1.1, 1.0), "precision": "int8", "edgekit_float_layers": "first 5 convolutions"}
    every = {**_row(zoo, 0.98, 1.0), "precision": zoo.ALL_INT8, "edgekit_float_layers": None}
    rows = zoo.table_rows([fp32, int8, every])
    assert [r[-1] for r in rows] == ["-", "first 5 convolutions", "-"]
    assert [r[1] for r in rows] == ["fp32", "int8", "int8-all"]
