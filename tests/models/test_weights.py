import hashlib
import http.server
import threading
from collections import OrderedDict
from pathlib import Path

import pytest
import torch

from edgekit.data import bundled_images, preprocess
from edgekit.errors import DownloadError, WeightsError
from edgekit.models import create, state_dict_sha256
from edgekit.models import registry as registry_module
from edgekit.models.registry import build_architecture
from edgekit.models.weights import (
    INIT_SOURCE,
    TARGET_LOGIT_STD,
    apply_state_dict,
    download_pretrained,
    expected_hash_prefix,
    load_state_dict_file,
)

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class _Pickled:
    """Any non-tensor Python class: a weights-only load must refuse it."""


@pytest.fixture(scope="module")
def x0_5_state():
    return build_architecture("shufflenet_v2_x0_5").state_dict()


def _one_line(exc_info) -> str:
    message = str(exc_info.value)
    assert "\n" not in message
    return message


# --- load_state_dict_file ------------------------------------------------------------------------------


def test_state_dict_round_trips_through_weights(tmp_path, x0_5_state):
    path = tmp_path / "x0_5.pth"
    torch.save(x0_5_state, path)
    model = create("shufflenet_v2_x0_5", weights=path)
    assert not model.training
    assert all(torch.equal(model.state_dict()[k], v) for k, v in x0_5_state.items())
    source = registry_module.create_with_source("shufflenet_v2_x0_5", weights=path)[1]
    assert source == f"file:{path}"


@pytest.mark.parametrize("wrap", ["state_dict", "model", "module_prefix"])
def test_checkpoint_wrappers_are_unwrapped(tmp_path, x0_5_state, wrap):
    path = tmp_path / "ckpt.pth"
    if wrap == "module_prefix":
        torch.save(OrderedDict((f"module.{k}", v) for k, v in x0_5_state.items()), path)
    else:
        torch.save({wrap: x0_5_state, "epoch": 3, "optimizer": {"lr": torch.tensor(0.1)}}, path)
    loaded = load_state_dict_file(path)
    assert list(loaded) == list(x0_5_state)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(WeightsError, match="does not exist") as err:
        load_state_dict_file(tmp_path / "nope.pth")
    assert "torch.save(model.state_dict()" in _one_line(err)
    with pytest.raises(WeightsError, match="not a file"):
        load_state_dict_file(tmp_path)


def test_pickled_object_is_refused_not_executed(tmp_path):
    path = tmp_path / "obj.pth"
    torch.save(_Pickled(), path)
    with pytest.raises(WeightsError) as err:
        load_state_dict_file(path)
    message = _one_line(err)
    assert "obj.pth" in message and "_Pickled" in message and "state_dict()" in message


def test_whole_pickled_module_is_refused(tmp_path):
    path = tmp_path / "model.pth"
    torch.save(torch.nn.Linear(2, 2), path)
    with pytest.raises(WeightsError, match="weights-only") as err:
        load_state_dict_file(path)
    _one_line(err)


@pytest.mark.parametrize("content", [b"", b"definitely not a checkpoint" * 20])
def test_unreadable_file(tmp_path, content):
    path = tmp_path / "junk.pth"
    path.write_bytes(content)
    with pytest.raises(WeightsError, match="could not read weights file .*junk.pth") as err:
        load_state_dict_file(path)
    _one_line(err)


@pytest.mark.parametrize("obj", [[torch.zeros(1)], {"w": torch.zeros(1), "note": "hello"}, {}])
def test_not_a_mapping_of_tensors(tmp_path, obj):
    path = tmp_path / "odd.pth"
    torch.save(obj, path)
    with pytest.raises(WeightsError, match="odd.pth") as err:
        load_state_dict_file(path)
    _one_line(err)


# --- apply_state_dict ----------------------------------------------------------------------------------


def test_wrong_architecture_names_first_mismatch(tmp_path, x0_5_state):
    path = tmp_path / "x0_5.pth"
    torch.save(x0_5_state, path)
    with pytest.raises(WeightsError) as err:
        create("shufflenet_v2_x1_0", weights=path)
    message = _one_line(err)
    # conv1 and the stage2 depthwise conv agree at 24 channels; the first 1x1 conv of branch1 does not.
    assert "shape of stage2.0.branch1.2.weight is (24, 24, 1, 1), model expects (58, 24, 1, 1)" in message
    assert "x0_5.pth" in message
    assert "is this a shufflenet_v2_x1_0 state dict?" in message


def test_missing_and_unexpected_keys_are_named(x0_5_state):
    model = build_architecture("shufflenet_v2_x0_5")
    partial = OrderedDict(x0_5_state)
    del partial["stage3.2.branch2.3.weight"]
    with pytest.raises(WeightsError, match=r"missing key stage3\.2\.branch2\.3\.weight;"):
        apply_state_dict(model, partial, source="p.pth", arch="shufflenet_v2_x0_5")
    extra = OrderedDict(x0_5_state, **{"head.weight": torch.zeros(3)})
    with pytest.raises(WeightsError, match=r"unexpected key head\.weight;"):
        apply_state_dict(model, extra, source="p.pth", arch="shufflenet_v2_x0_5")


def test_nothing_is_loaded_when_a_key_mismatches(x0_5_state):
    model = build_architecture("shufflenet_v2_x0_5")
    before = state_dict_sha256(model)
    bad = OrderedDict((k, torch.ones_like(v)) for k, v in x0_5_state.items())
    bad["fc.bias"] = torch.zeros(5)
    with pytest.raises(WeightsError):
        apply_state_dict(model, bad, source="bad.pth")
    assert state_dict_sha256(model) == before


def test_missing_num_batches_tracked_is_tolerated(x0_5_state):
    model = build_architecture("shufflenet_v2_x0_5")
    old_style = OrderedDict((k, v) for k, v in x0_5_state.items() if not k.endswith("num_batches_tracked"))
    apply_state_dict(model, old_style, source="old.pth")
    assert torch.equal(model.state_dict()["fc.weight"], x0_5_state["fc.weight"])


def test_sha256_changes_with_any_value():
    model = build_architecture("shufflenet_v2_x0_5")
    before = state_dict_sha256(model)
    assert len(before) == 64
    with torch.no_grad():
        model.conv5[1].running_var[3] += 1e-3
    assert state_dict_sha256(model) != before


# --- deterministic init --------------------------------------------------------------------------------


def test_default_init_is_identical_twice_and_leaves_global_rng_alone():
    torch.manual_seed(7)
    expected = torch.rand(4)
    torch.manual_seed(7)
    first = create("shufflenet_v2_x0_5")
    second = create("shufflenet_v2_x0_5")
    assert torch.equal(torch.rand(4), expected)
    assert state_dict_sha256(first) == state_dict_sha256(second)
    for (k, a), b in zip(first.state_dict().items(), second.state_dict().values(), strict=True):
        assert a.dtype == b.dtype and torch.equal(a, b), k
    assert registry_module.create_with_source("shufflenet_v2_x0_5")[1] == INIT_SOURCE


def test_default_init_calibrates_batchnorm():
    model = create("shufflenet_v2_x0_5")
    bn = model.conv1[1]
    assert int(bn.num_batches_tracked) == 1
    assert bn.momentum == 0.1  # restored after the cumulative-average calibration pass
    assert not torch.allclose(bn.running_var, torch.ones_like(bn.running_var))
    assert bn.running_var.dtype == torch.float32


@pytest.mark.parametrize("name", ["shufflenet_v2_x1_0", "augshufflenet_x0_5"])
def test_default_init_logits_are_realistic_on_natural_images(name):
    model = create(name)
    # seed 1: different crops from the seed-0 crops the BatchNorm statistics were measured on
    x = torch.from_numpy(preprocess(bundled_images(16, seed=1), MEAN, STD))
    with torch.no_grad():
        logits = model(x)
    assert torch.isfinite(logits).all()
    per_image_std = logits.std(dim=1)
    # TARGET_LOGIT_STD on unseen crops: spread, but small enough that fp32 rounding stays far below 1e-4
    assert (per_image_std > 0.2 * TARGET_LOGIT_STD).all() and (per_image_std < 4 * TARGET_LOGIT_STD).all()
    assert logits.abs().max() < 20 * TARGET_LOGIT_STD
    assert len(set(logits.argmax(dim=1).tolist())) >= 3  # different photos, not one answer for all
    assert (logits - logits.mean(dim=0)).abs().mean() > 0.1 * TARGET_LOGIT_STD  # images differ


@pytest.mark.slow
@pytest.mark.parametrize("name", ["shufflenet_v2_x1_5", "shufflenet_v2_x2_0", "augshufflenet_x2_0"])
def test_default_init_wide_models_realistic_and_deterministic(name):
    first, second = create(name), create(name)
    assert state_dict_sha256(first) == state_dict_sha256(second)
    x = torch.from_numpy(preprocess(bundled_images(8, seed=1), MEAN, STD))
    with torch.no_grad():
        logits = first(x)
    assert (logits.std(dim=1) > 0.2 * TARGET_LOGIT_STD).all() and logits.abs().max() < 20 * TARGET_LOGIT_STD


# --- download_pretrained ---------------------------------------------------------------------------------


class _Server:
    """http.server on 127.0.0.1 serving one folder, counting GET requests."""

    def __init__(self, root: Path):
        server = self
        self.requests = 0

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, directory=str(root), **kwargs)

            def do_GET(self):
                server.requests += 1
                super().do_GET()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "served"
    root.mkdir()
    s = _Server(root)
    s.root = root
    yield s
    s.close()


def _publish(root: Path, stem: str, payload: bytes) -> str:
    name = f"{stem}-{hashlib.sha256(payload).hexdigest()[:10]}.pth"
    (root / name).write_bytes(payload)
    return name


def test_hash_prefix_follows_torchvision_names():
    assert expected_hash_prefix("https://x/models/shufflenetv2_x0.5-f707e7126e.pth") == "f707e7126e"
    assert expected_hash_prefix("https://x/models/shufflenetv2_x1_5-3c479a10.pth") == "3c479a10"
    assert expected_hash_prefix("https://x/models/plain.pth") is None


def test_download_verifies_reports_progress_and_caches(server, tmp_path):
    payload = bytes(range(256)) * 1000
    name = _publish(server.root, "tiny", payload)
    cache = tmp_path / "cache"
    seen = []
    path = download_pretrained(
        f"{server.base}/{name}", cache_dir=cache, progress=lambda d, t: seen.append((d, t))
    )
    assert path == cache / name and path.read_bytes() == payload
    assert seen[0] == (0, len(payload)) and seen[-1] == (len(payload), len(payload))
    assert [p.name for p in cache.iterdir()] == [name]  # no temporary file left behind
    # a verified cached file is reused without touching the network
    assert download_pretrained(f"{server.base}/{name}", cache_dir=cache) == path
    assert server.requests == 1


def test_checksum_mismatch_leaves_nothing(server, tmp_path):
    (server.root / "tiny-0000000000.pth").write_bytes(b"payload")
    cache = tmp_path / "cache"
    with pytest.raises(DownloadError, match="checksum mismatch") as err:
        download_pretrained(f"{server.base}/tiny-0000000000.pth", cache_dir=cache)
    assert "--weights FILE" in _one_line(err)
    assert list(cache.iterdir()) == []


def test_http_error(server, tmp_path):
    with pytest.raises(DownloadError, match="HTTP 404") as err:
        download_pretrained(f"{server.base}/missing-abcdef.pth", cache_dir=tmp_path)
    assert "manually" in _one_line(err)


def test_offline_error_says_how_to_proceed(tmp_path):
    url = "http://127.0.0.1:9/x-abcdef.pth"  # discard port: nothing listens
    with pytest.raises(DownloadError) as err:
        download_pretrained(url, cache_dir=tmp_path / "cache", timeout=5)
    message = _one_line(err)
    assert url in message and "manually" in message and "--weights FILE" in message


def test_pretrained_create_downloads_only_when_asked(server, tmp_path, monkeypatch, x0_5_state):
    buffer = tmp_path / "sd.pth"
    torch.save(x0_5_state, buffer)
    name = _publish(server.root, "shufflenetv2_x0.5", buffer.read_bytes())
    url = f"{server.base}/{name}"
    monkeypatch.setitem(registry_module._REGISTRY["shufflenet_v2_x0_5"].meta, "pretrained_url", url)
    monkeypatch.setattr("edgekit.models.weights.DEFAULT_CACHE_DIR", tmp_path / "cache")

    create("shufflenet_v2_x0_5")
    assert server.requests == 0  # the default init never downloads

    model, source = registry_module.create_with_source("shufflenet_v2_x0_5", pretrained=True)
    assert server.requests == 1
    assert source == f"pretrained:{url}"
    assert all(torch.equal(model.state_dict()[k], v) for k, v in x0_5_state.items())
