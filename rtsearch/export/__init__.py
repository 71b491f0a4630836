"""Turn pretrained weights into rtsearch ONNX models, without torch.

Graphs are written directly with ``onnx.helper`` from numpy weights; ``.pth`` files are
read by a restricted unpickler that runs no code from the file. Every model carries its
``ModelInfo`` as metadata, so the runtime needs nothing else to use it.
"""

from rtsearch.export.efficientnet_lite0 import export_efficientnet_lite0
from rtsearch.export.torch_pickle import load_state_dict
from rtsearch.export.vgg16 import detect_layout, export_vgg16

DEFAULT_FILENAMES = {
    ("efficientnet-lite0", False): "efficientnet-lite0.onnx",
    ("efficientnet-lite0", True): "efficientnet-lite0-int8.onnx",
    ("vgg16", False): "vgg16-fc7.onnx",
    ("vgg16", True): "vgg16-fc7-int8.onnx",
}

__all__ = [
    "DEFAULT_FILENAMES",
    "detect_layout",
    "export_efficientnet_lite0",
    "export_vgg16",
    "load_state_dict",
]
