"""Small helpers shared by the ONNX -> TFLite lowering modules."""

from __future__ import annotations

import onnx

NCHW_TO_NHWC_AXIS = {0: 0, 1: 3, 2: 1, 3: 2}


def to_nhwc(shape) -> tuple[int, ...]:
    n, c, h, w = shape
    return (n, h, w, c)


def attrs(node) -> dict:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def clean(name: str) -> str:
    return name.strip("/").replace("/", ".") or "t"
