"""Weights for edgekit's models: state-dict files, pretrained downloads, and a deterministic default init.

A model without weights still has to compute something meaningful, or a parity check between PyTorch and
an exported file proves little (a network whose logits are all equal agrees with anything).
``deterministic_init`` therefore gives seeded weights plus BatchNorm statistics measured on bundled
natural photos, and scales the classifier so the logits spread like a trained network's.
"""

from __future__ import annotations

import hashlib
import math
import os
import pickle
import re
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgekit.data import bundled_images, preprocess
from edgekit.data.extra_inputs import INIT_SEED as EXTRA_INIT_SEED
from edgekit.data.extra_inputs import extra_input_values
from edgekit.errors import DownloadError, WeightsError
from edgekit.fileio import sha256_file

INIT_SEED = 0
CALIBRATION_IMAGES = 32
#: Standard deviation of the logits (over classes, per image) after ``deterministic_init``. The head is
#: only scaled, not centred on the mean feature: a centred head reads out the small per-image feature
#: differences and amplifies every rounding with them (measured on ShuffleNetV2 1.0x: fp32 PyTorch vs
#: ONNX Runtime 2.6e-4 at std 3, int8 TFLite logits cosine 0.73 and top-1 agreement 0.19). Scaled only,
#: fp32 parity is 1-3e-5, int8 cosine 0.98 (the peers' figure on such weights), and the top-1 class still
#: varies between photos (5 classes over 16 crops), with small margins as untrained weights have.
TARGET_LOGIT_STD = 1.0
INIT_SOURCE = f"init:seed={INIT_SEED},bn-calibrated"

DEFAULT_CACHE_DIR = Path("~/.cache/edgekit/weights")
# torchvision's convention: the file name carries the first hex digits of the file's sha256 after a dash.
_HASH_IN_NAME = re.compile(r"-([a-f0-9]*)\.")
_REFUSED_GLOBAL = re.compile(r"Unsupported global: GLOBAL ([\w.]+)")
_CHUNK = 1 << 16


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:300]}" if text else type(exc).__name__


# ------------------------------------------------------------------------------------------------------
# Reading and applying state-dict files


def load_state_dict_file(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Read a state dict from a file written by ``torch.save``, without executing pickled code.

    Accepts a raw state dict or a checkpoint dict wrapping one under ``"state_dict"`` or ``"model"``;
    a ``"module."`` prefix on every key (``DataParallel``) is stripped. Returns ``{key: tensor}`` on the CPU.
    Raises ``WeightsError`` naming the file when it is missing, unreadable, holds pickled objects that a
    weights-only load refuses (e.g. a whole ``nn.Module``), or is not a mapping of names to tensors.
    """
    p = Path(path).expanduser()
    fix = "pass a file written by torch.save(model.state_dict(), path)"
    if not p.exists():
        raise WeightsError(f"weights file {path} does not exist; {fix}")
    if not p.is_file():
        raise WeightsError(f"weights path {path} is not a file; {fix}")
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # weights_only=True refuses arbitrary classes; we never retry without it (it would run their code).
        # torch words both refusals and plain garbage as UnpicklingError; "Unsupported global" names a class.
        refused = _REFUSED_GLOBAL.search(str(exc))
        if refused:
            raise WeightsError(
                f"weights file {path} holds a pickled Python object ({refused.group(1)}) that a weights-only "
                f"load refuses; save model.state_dict() instead of the model and {fix}"
            ) from None
        raise WeightsError(f"could not read weights file {path} (not a PyTorch file); {fix}") from None
    except Exception as exc:  # torch.load fails in many ways on non-checkpoints (IndexError, KeyError, ...)
        raise WeightsError(f"could not read weights file {path} ({_one_line(exc)}); {fix}") from None

    state: Any = obj
    if isinstance(obj, Mapping) and not _all_tensors(obj):
        for wrapper in ("state_dict", "model"):
            if isinstance(obj.get(wrapper), Mapping):
                state = obj[wrapper]
                break
    if not isinstance(state, Mapping) or not state:
        raise WeightsError(
            f"weights file {path} holds a {type(state).__name__}, not a state dict of tensors; {fix}"
        )
    for key, value in state.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise WeightsError(
                f"weights file {path} is not a state dict: entry {key!r} is a {type(value).__name__}, "
                f"not a tensor; {fix}"
            )
    if all(k.startswith("module.") for k in state):
        state = OrderedDict((k[len("module.") :], v) for k, v in state.items())
    return dict(state)


def _all_tensors(obj: Mapping) -> bool:
    return all(isinstance(v, torch.Tensor) for v in obj.values())


def apply_state_dict(
    model: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str, arch: str | None = None
) -> nn.Module:
    """Load ``state_dict`` into ``model`` after checking every key and shape first.

    ``source`` (a file name or URL) and ``arch`` (the model's name; default its class name) go into the
    error. Missing ``num_batches_tracked`` buffers are tolerated (older files lack them). Returns
    ``model``. Raises ``WeightsError`` naming the first mismatch (missing key, unexpected key, or wrong
    shape) and how many there are in all.
    """
    arch = arch or type(model).__name__
    expected = model.state_dict()
    problems: list[str] = []
    for key, tensor in expected.items():
        if key not in state_dict:
            if not key.endswith("num_batches_tracked"):
                problems.append(f"missing key {key}")
        elif tuple(state_dict[key].shape) != tuple(tensor.shape):
            problems.append(
                f"shape of {key} is {tuple(state_dict[key].shape)}, model expects {tuple(tensor.shape)}"
            )
    problems += [f"unexpected key {key}" for key in state_dict if key not in expected]
    if problems:
        more = f" (and {len(problems) - 1} more mismatches)" if len(problems) > 1 else ""
        raise WeightsError(
            f"weights {source} do not fit {arch}: {problems[0]}{more}; is this a {arch} state dict?"
        )
    full = {key: state_dict.get(key, tensor) for key, tensor in expected.items()}
    model.load_state_dict(full, strict=True)
    return model


def state_dict_sha256(module: nn.Module) -> str:
    """Hex sha256 over ``module``'s state dict in key order: each key, dtype, shape and raw tensor bytes."""
    digest = hashlib.sha256()
    for key, tensor in module.state_dict().items():
        t = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{key}|{t.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(t.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


# ------------------------------------------------------------------------------------------------------
# Pretrained downloads


def expected_hash_prefix(url: str) -> str | None:
    """The sha256 prefix in a torchvision-style file name (``name-<hex>.pth``), or ``None`` if absent."""
    name = os.path.basename(urllib.parse.urlparse(url).path)
    match = _HASH_IN_NAME.search(name)
    return match.group(1) if match and match.group(1) else None


def download_pretrained(
    url: str,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: Callable[[int, int | None], None] | None = None,
    timeout: float = 30.0,
) -> Path:
    """Fetch ``url`` into ``cache_dir`` (default ``~/.cache/edgekit/weights``) and return the file's path.

    Only called when the user asked for pretrained weights. A cached file whose sha256 matches the prefix
    in its name is reused without network access. ``progress(done_bytes, total_bytes or None)`` is called
    as data arrives. The file is written to a temporary name and renamed once its hash checks out, so an
    interrupted download never leaves a file that looks complete. Raises ``DownloadError`` (offline, HTTP
    error, checksum mismatch, cache not writable), saying to download the URL by hand and pass
    ``--weights FILE``.
    """
    manual = f"download {url} manually and pass --weights FILE"
    cache = Path(cache_dir if cache_dir is not None else DEFAULT_CACHE_DIR).expanduser()
    name = os.path.basename(urllib.parse.urlparse(url).path) or "weights.pth"
    target = cache / name
    prefix = expected_hash_prefix(url)
    if target.is_file() and (prefix is None or sha256_file(target).startswith(prefix)):
        return target
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DownloadError(f"cannot create weights cache {cache} ({_one_line(exc)}); {manual}") from None

    tmp_fd, tmp_name = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=cache)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(tmp_fd, "wb") as out:
            request = urllib.request.Request(url, headers={"User-Agent": "edgekit"})
            with urllib.request.urlopen(request, timeout=timeout) as response:
                length = response.headers.get("Content-Length")
                total = int(length) if length and length.isdigit() else None
                done = 0
                if progress is not None:
                    progress(0, total)
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
                    done += len(chunk)
                    if progress is not None:
                        progress(done, total)
        if total is not None and done != total:
            raise DownloadError(f"download of {url} stopped at {done} of {total} bytes; {manual}")
        sha256 = sha256_file(tmp)
        if prefix is not None and not sha256.startswith(prefix):
            raise DownloadError(
                f"checksum mismatch for {url}: sha256 {sha256[:16]}... does not start with "
                f"{prefix}; {manual}"
            )
        os.replace(tmp, target)
    except DownloadError:
        raise
    except urllib.error.HTTPError as exc:
        raise DownloadError(f"could not download {url} (HTTP {exc.code} {exc.reason}); {manual}") from None
    except urllib.error.URLError as exc:
        reason = _one_line(exc.reason) if isinstance(exc.reason, BaseException) else str(exc.reason)
        raise DownloadError(f"could not download {url} (offline? {reason}); {manual}") from None
    except OSError as exc:  # timeouts, resets, disk full
        raise DownloadError(f"could not download {url} ({_one_line(exc)}); {manual}") from None
    finally:
        tmp.unlink(missing_ok=True)
    return target


# ------------------------------------------------------------------------------------------------------
# Deterministic default init


def _init_parameters(model: nn.Module, generator: torch.Generator) -> None:
    # torchvision-style: kaiming-normal (fan_out) convs, unit BatchNorm, small-normal classifier; drawn in
    # module order from a private generator, so the result does not depend on (or disturb) global RNG.
    # Linear layers before the last one (transformer and ConvNeXt MLPs, attention projections) get
    # variance-preserving 1/sqrt(fan_in) weights: at the classifier's 0.01 their blocks would contribute
    # almost nothing, and a parity check would not see the ops inside them.
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    head = linears[-1] if linears else None
    for m in model.modules():
        if isinstance(m, nn.Conv2d | nn.Conv1d | nn.Conv3d):
            fan_out = m.out_channels // m.groups * math.prod(m.kernel_size)
            with torch.no_grad():
                m.weight.copy_(torch.randn(m.weight.shape, generator=generator) * math.sqrt(2.0 / fan_out))
                if m.bias is not None:
                    m.bias.zero_()
        elif isinstance(m, nn.modules.conv._ConvTransposeNd):
            # Each output pixel sums in_channels/groups x kernel area / stride area taps: keep its variance.
            taps = m.in_channels // m.groups * math.prod(m.kernel_size) / math.prod(m.stride)
            with torch.no_grad():
                m.weight.copy_(torch.randn(m.weight.shape, generator=generator) / math.sqrt(taps))
                if m.bias is not None:
                    m.bias.zero_()
        elif isinstance(m, nn.modules.batchnorm._BatchNorm):
            if m.affine:
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            if m.track_running_stats:
                m.reset_running_stats()
        elif isinstance(m, nn.Linear):
            std = 0.01 if m is head else 1.0 / math.sqrt(m.in_features)
            with torch.no_grad():
                m.weight.copy_(torch.randn(m.weight.shape, generator=generator) * std)
                if m.bias is not None:
                    m.bias.zero_()
        elif isinstance(m, nn.LayerNorm | nn.GroupNorm) and m.weight is not None:
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def deterministic_init(
    model: nn.Module,
    input_shape: Sequence[int],
    mean: Sequence[float],
    std: Sequence[float],
    seed: int = INIT_SEED,
    calibration_images: int = CALIBRATION_IMAGES,
    extra_input_shapes: Sequence[Sequence[int]] = (),
) -> nn.Module:
    """Give ``model`` reproducible, realistic weights without training; returns it in eval mode.

    1. Seeded init from a private ``torch.Generator(seed)`` (global RNG state is untouched).
    2. BatchNorm calibration: one pass in train mode with ``momentum=None`` (cumulative average) over
       ``calibration_images`` bundled photo crops at ``input_shape``'s size, normalised with
       ``mean``/``std``, so every BatchNorm sees its real input statistics and outputs unit-scale
       activations (affine weight 1, bias 0) on natural images.
    3. The last ``nn.Linear`` is scaled so logits have a standard deviation of ``TARGET_LOGIT_STD`` across
       classes on the calibration images (bias zero): neither flat nor exploding.

    A model with inputs after the image (``extra_input_shapes``, batch first) gets seeded standard-normal
    values for them (``edgekit.data.extra_inputs``) beside each photo.

    The calibration pass runs in float64 (on one thread) so the calibrated values, and hence
    ``state_dict_sha256``, do not depend on thread count or CPU kernel choice: a model rebuilt on another
    machine hashes the same as the one that was exported.
    """
    generator = torch.Generator().manual_seed(seed)
    _init_parameters(model, generator)

    _, channels, height, width = (int(v) for v in input_shape)
    photos = bundled_images(calibration_images, size=(height, width), seed=seed)
    images = preprocess(photos, mean, std, channels)
    x = torch.from_numpy(images).double()
    extra = [torch.from_numpy(v).double()
             for v in extra_input_values(extra_input_shapes, len(images), seed=EXTRA_INIT_SEED)]

    batchnorms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [bn.momentum for bn in batchnorms]
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    head = linears[-1] if linears else None
    features: list[torch.Tensor] = []
    hook = head.register_forward_hook(lambda _m, inputs, _o: features.append(inputs[0])) if head else None

    original_dtype = next(model.parameters()).dtype
    threads = torch.get_num_threads()
    try:
        for bn in batchnorms:
            bn.momentum = None  # cumulative moving average: the running stats become the batch stats
            bn.reset_running_stats()
        # Only BatchNorm runs in training mode: dropout stays off, so the pass neither draws from the global
        # RNG nor feeds the head scaling below thinned features.
        model.double().eval()
        for bn in batchnorms:
            bn.train()
        # float64 convolutions take PyTorch's generic kernels, whose OpenMP threads slow down tenfold when
        # other processes compete for the cores; one thread is about as fast when idle and steady when not.
        torch.set_num_threads(1)
        with torch.no_grad():
            model(x, *extra)
    finally:
        torch.set_num_threads(threads)
        for bn, momentum in zip(batchnorms, momenta, strict=True):
            bn.momentum = momentum
        if hook is not None:
            hook.remove()
        model.to(original_dtype).eval()

    if head is not None and features:
        f = features[0].reshape(features[0].shape[0], -1)
        w = head.weight.detach().double()
        logits = f @ w.T
        spread = float(logits.std(dim=1).mean())
        scale = TARGET_LOGIT_STD / spread if spread > 0 else 1.0
        with torch.no_grad():
            head.weight.copy_((w * scale).to(head.weight.dtype))
            if head.bias is not None:
                head.bias.zero_()
    return model
