"""Per-layer ops of a PyTorch module, traced from one forward pass.

A ``TorchFunctionMode`` sees every torch call the forward makes (module layers and the functional ops in
``forward`` alike: ``torch.cat``, ``chunk``, the view/transpose of a channel shuffle, ``+``), with its
real shapes, while module hooks say which module made it. Nested calls (``F.batch_norm`` calling
``torch.batch_norm``) are seen once. A BatchNorm fed by a convolution is marked ``folded``: every
exporter folds it into the convolution's weights, so it costs nothing at run time.
"""

from __future__ import annotations

from collections import Counter

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from edgekit.analysis.costs import OpNode, conv_kind

_ELEMENTWISE = {
    "relu", "relu_", "relu6", "hardtanh", "hardtanh_", "sigmoid", "sigmoid_", "silu", "hardswish", "gelu",
    "tanh", "leaky_relu", "elu", "prelu", "mish", "hardsigmoid", "softmax", "log_softmax", "clamp", "clamp_",
    "add", "add_", "__add__", "__iadd__", "__radd__", "mul", "mul_", "__mul__", "__imul__", "__rmul__", "sub",
    "sub_", "__sub__", "__rsub__", "div", "div_", "__truediv__", "neg", "batch_norm", "layer_norm",
    "group_norm", "instance_norm", "dropout",
}
_POOL = {"max_pool2d", "avg_pool2d", "adaptive_avg_pool2d", "adaptive_max_pool2d", "mean", "amax", "sum"}
_MOVEMENT = {
    "cat": "concat", "concat": "concat", "concatenate": "concat", "stack": "concat",
    "chunk": "split", "split": "split", "unbind": "split", "tensor_split": "split",
    "__getitem__": "slice", "narrow": "slice", "select": "slice", "index_select": "slice",
    "transpose": "transpose", "permute": "transpose", "t": "transpose", "channel_shuffle": "transpose",
    "view": "reshape", "reshape": "reshape", "flatten": "reshape", "squeeze": "reshape",
    "unsqueeze": "reshape", "view_as": "reshape", "reshape_as": "reshape",
    "pad": "pad",
}
# Calls that make no new data: a contiguous() after a transpose is where the transpose's copy happens,
# and the transpose is already counted.
_SKIP = {"contiguous", "clone", "detach", "to", "float", "type", "requires_grad_", "cpu", "__get__",
         "identity"}


def _func_name(func) -> str:
    name = getattr(func, "__name__", None) or type(func).__name__
    return name.lstrip("_") if name.startswith("_") and not name.startswith("__") else name


def _tensors(value) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _tensors(v)]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _tensors(v)]
    return []


class _Tracer(TorchFunctionMode):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.trainable = {id(p) for p in model.parameters()}
        self.params = self.trainable | {id(b) for b in model.buffers()}
        self.stack: list[tuple[str, nn.Module]] = []
        self.nodes: list[OpNode] = []
        self.version: dict[int, str] = {}  # id(tensor) -> key of its latest value
        self.keep: list[torch.Tensor] = []  # keeps traced tensors alive so ids are not reused
        self.kind_of: dict[str, str] = {}  # tensor key -> kind of the op that produced it
        self.ops_in_module: Counter = Counter()

    def key(self, tensor: torch.Tensor) -> str:
        if id(tensor) not in self.version:
            self.version[id(tensor)] = f"input{len(self.version)}"
            self.keep.append(tensor)
        return self.version[id(tensor)]

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        name = _func_name(func)
        outs = _tensors(out)
        if not outs:
            return out
        if name in _SKIP:
            ins = _tensors(args[:1])
            if len(outs) == 1 and ins and id(ins[0]) in self.version:  # same value under a new tensor
                self.version[id(outs[0])] = self.version[id(ins[0])]
                self.keep.append(outs[0])
            return out
        ins = [t for t in _tensors(list(args) + list(kwargs.values())) if id(t) not in self.params]
        weights = [t for t in _tensors(list(args) + list(kwargs.values())) if id(t) in self.params]
        self.record(name, func, args, kwargs, ins, weights, outs)
        return out

    def record(self, name, func, args, kwargs, ins, weights, outs) -> None:
        path, module = self.stack[-1] if self.stack else ("", None)
        leaf = bool(path) and module is not None and not any(True for _ in module.children())
        first = self.ops_in_module[path] == 0
        self.ops_in_module[path] += 1
        if leaf and first:
            op_name, op_type = path, type(module).__name__
        else:
            op_name, op_type = f"{path}/{name}" if path else name, name
            self.ops_in_module[(path, name)] += 1
            if self.ops_in_module[(path, name)] > 1:
                op_name += f"#{self.ops_in_module[(path, name)]}"
        node = OpNode(
            name=op_name, op_type=op_type, kind="other", input_shapes=[tuple(t.shape) for t in ins],
            output_shapes=[tuple(t.shape) for t in outs], inputs=[self.key(t) for t in ins],
        )
        if name == "conv2d" and weights:
            w = weights[0]
            groups = int(args[6] if len(args) > 6 else kwargs.get("groups", 1))
            c_out, c_in_g, kh, kw = (int(d) for d in w.shape)
            node.in_channels, node.out_channels, node.groups = int(ins[0].shape[1]), c_out, groups
            node.kernel = (kh, kw)
            node.out_hw = int(outs[0].shape[-1] * outs[0].shape[-2])
            node.kind = conv_kind(node.in_channels, c_out, groups, (kh, kw))
            node.weight_elements = w.numel()
        elif name == "linear" and weights:
            node.kind = "fc"
            node.in_channels, node.out_channels = int(weights[0].shape[1]), int(weights[0].shape[0])
            node.weight_elements = weights[0].numel()
        elif name == "batch_norm" and node.inputs and self.kind_of.get(node.inputs[0]) in (
                "conv1x1", "conv", "group_conv", "depthwise_conv"):
            node.kind, node.note = "folded", "folds into the convolution before it"
        elif name in _ELEMENTWISE:
            node.kind = "elementwise"
        elif name in _POOL:
            node.kind = "pool"
        elif name in _MOVEMENT:
            node.kind = _MOVEMENT[name]
        elif name in ("max_pool2d_with_indices", "fn"):
            node.kind = "pool"
        node.params = sum(t.numel() for t in weights if id(t) in self.trainable)
        node.outputs = []
        for i, t in enumerate(outs):
            key = f"{len(self.nodes)}:{i}"
            self.version[id(t)] = key
            self.keep.append(t)
            self.kind_of[key] = node.kind
            node.outputs.append(key)
        if node.kind == "other":
            node.note = f"unknown op {name}"
        self.nodes.append(node)


def trace_module(model: nn.Module, input_shape: tuple[int, ...]) -> list[OpNode]:
    """The ops one forward pass of ``model`` on zeros of ``input_shape`` runs, in order, as ``OpNode``s.

    The input is made on the model's device, so a model moved to ``"meta"`` is traced without computing.

    Layer names are module paths (``stage2.0.branch2.0``); ops a module's ``forward`` makes itself are
    named ``path/op`` (``stage2.1/cat``). Raises whatever the model's forward raises.
    """
    model = model.eval()
    tracer = _Tracer(model)
    names = {id(m): n for n, m in model.named_modules()}
    handles = []

    def enter(module, _inputs):
        tracer.stack.append((names.get(id(module), ""), module))

    def leave(_module, _inputs, _output):
        tracer.stack.pop()

    for module in model.modules():
        handles.append(module.register_forward_pre_hook(enter))
        handles.append(module.register_forward_hook(leave))
    first = next(iter(model.parameters()), None)
    x = torch.zeros(input_shape, device=first.device if first is not None else "cpu")  # "meta" works too
    tracer.key(x)
    try:
        with torch.no_grad(), tracer:
            model(x)
    finally:
        for h in handles:
            h.remove()
    return tracer.nodes
