"""edgekit's models: a registry of built-in CNNs, users' own factories, and their weights.

``create("shufflenet_v2_x1_0")`` builds a registered model; ``resolve(spec)`` accepts a registry name or
a ``path/to/file.py:factory`` / ``package.module:factory`` spec and returns a ``ModelHandle`` with the
module, its input shape, preprocessing and a hash of its weights.
"""

from edgekit.models.channel_shuffle import SHUFFLE_LOWERINGS, channel_shuffle, shuffle_lowering
from edgekit.models.registry import ModelInfo, create, list_models, model_names, register_model

# Importing the families fills the registry (the zoo's modules define classes only; nothing is built).
from edgekit.models import augshufflenet, digits, shufflenetv2  # noqa: E402, F401, I001  isort: skip
from edgekit.models import (  # noqa: E402, F401, I001  isort: skip
    convnext,
    detection,
    efficientnet,
    ghostnet,
    mnasnet,
    mobilenetv2,
    mobilenetv3,
    mobilevit,
    regnet,
    resnet,
    segmentation,
    squeezenet,
)
from edgekit.models.handle import ExtraInput, ModelHandle, parse_input_shape, parse_tensor_shape, resolve  # noqa: E402
from edgekit.models.weights import state_dict_sha256  # noqa: E402

__all__ = [
    "SHUFFLE_LOWERINGS",
    "ExtraInput",
    "ModelHandle",
    "ModelInfo",
    "channel_shuffle",
    "create",
    "list_models",
    "model_names",
    "parse_input_shape",
    "parse_tensor_shape",
    "register_model",
    "resolve",
    "shuffle_lowering",
    "state_dict_sha256",
]
