"""Images for edgekit's checks: bundled photo crops, image folders, and their preprocessing.

Everything here returns NumPy arrays; ``load_inputs`` is the one call the CLI and the checks make.
"""

from edgekit.data.bundled import bundled_images, bundled_photo_paths
from edgekit.data.calibration import CalibrationSet, calibration_set
from edgekit.data.folder import IMAGE_EXTENSIONS, ImageFolderReader, resize_center_crop
from edgekit.data.inputs import InputSet, load_inputs
from edgekit.data.preprocess import preprocess

__all__ = [
    "CalibrationSet",
    "IMAGE_EXTENSIONS",
    "ImageFolderReader",
    "InputSet",
    "bundled_images",
    "bundled_photo_paths",
    "calibration_set",
    "load_inputs",
    "preprocess",
    "resize_center_crop",
]
