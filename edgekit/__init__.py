"""edgekit: a PyTorch CNN to an Android app — export, int8, parity proof, on-device latency.

The CLI (``edgekit``) is a thin layer over this package; everything it does is one import away::

    import edgekit.models, edgekit.export, edgekit.check
    result = edgekit.export.export_onnx("shufflenet_v2_x1_0", output_dir="out")
"""

__version__ = "0.1.0"
