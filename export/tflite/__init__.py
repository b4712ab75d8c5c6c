"""PyTorch -> native-NHWC TFLite: lowering from the exported ONNX graph, shuffle lowerings, int8, writer."""
