# edgekit: `make demo` installs (if needed) and runs the main job; `make test` runs the tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test test-fast test-zoo fuzz lint bench clean arm64-root

install: $(STAMP)

# torch is pinned to 2.13.0 in pyproject (a CPU build); the stamp re-runs the install when pyproject changes.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip setuptools wheel
	$(BIN)/pip install -e '.[dev]'
	touch $(STAMP)

demo: install
	$(BIN)/edgekit models
	$(BIN)/edgekit export --format onnx --output edgekit-out
	$(BIN)/edgekit export --format tflite --int8 --output edgekit-out
	$(BIN)/edgekit check edgekit-out/shufflenet_v2_x1_0_int8.tflite
	$(BIN)/edgekit bench edgekit-out/shufflenet_v2_x1_0_int8.tflite --target host --threads 1,2 --output edgekit-out/bench

# pytest exits 5 when it collected no test: treat that as the failure it is.
test: install
	$(BIN)/python -m pytest -q -m "not fuzz and not zoo"; status=$$?; \
	if [ $$status -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; exit $$status

test-fast: install
	$(BIN)/python -m pytest -q -m "not slow and not fuzz and not zoo"

# Every zoo model (edgekit/models) through ONNX/TFLite x fp32/int8 with parity, and int8 of a MobileNetV2 trained
# on the digits; the fast subset is in `make test`.
test-zoo: install
	$(BIN)/python -m pytest -q -m zoo tests/models/test_zoo_exports.py tests/benchmarks/test_int8_trained_vs_init.py

# The full fuzz campaigns of damaged model files (1,000 per format through check and the host bench).
fuzz: install
	$(BIN)/python -m pytest -q -m fuzz -s tests/fuzz

lint: install
	$(BIN)/ruff check .

bench: install
	$(BIN)/python benchmarks/onnx_latency.py

# The emulated arm64 device the `arm64` tests run on (qemu-user-static + Debian arm64 python3.11 + aarch64
# wheels), cached in ~/.cache/edgekit/arm64-root (EDGEKIT_ARM64_ROOT overrides). Idempotent.
arm64-root: install
	PYTHON=$(CURDIR)/$(BIN)/python bash tests/android_bench/build_arm64_root.sh

clean:
	rm -rf edgekit-out build *.egg-info .pytest_cache

.PHONY: bench-peers bench-tflite

# Peer converters for benchmarks/tflite_latency.py (litert-torch, onnx2tf), each in its own environment
# under .bench-envs/ (never .venv); writes .bench-envs/models/manifest.json. Not part of `make test`.
bench-peers: install
	$(BIN)/python benchmarks/peers/build_peers.py

# LiteRT/XNNPACK latency of edgekit's .tflite lowerings against the peers (run bench-peers first for them).
bench-tflite: install
	$(BIN)/python benchmarks/tflite_latency.py

.PHONY: bench-export

# Export time of the int8 exports as a ratio to fp32 (TFLite and ONNX; ShuffleNetV2 1.0x and a ResNet-18),
# and the peers' int8 conversions when bench-peers built them. Minutes; not part of `make test`.
bench-export: install
	$(BIN)/python benchmarks/export_time.py

.PHONY: bench-zoo bench-int8-trained

# int8 logit cosine of zoo architectures trained on the digits against their BN-calibrated init (TFLite and ONNX,
# digits and natural crops); trains each model once (minutes), cached in .bench-envs/trained-digits.
bench-int8-trained: install
	$(BIN)/python benchmarks/int8_trained_vs_init.py --html edgekit-out/int8_trained_vs_init.html

# LiteRT/XNNPACK latency of edgekit's .tflite against litert-torch's on every zoo model (fp32/int8, 1/2 threads),
# with each side's export time; builds litert-torch's environment first (bench-peers). Tens of minutes.
bench-zoo: install
	test -x .bench-envs/litert-torch/bin/python || $(BIN)/python benchmarks/peers/build_peers.py --peers litert-torch
	$(BIN)/python benchmarks/zoo_latency.py --html edgekit-out/zoo_latency.html
