"""16-bit, 32-bit and float images are scaled to 8 bits (v -> round(v / 257) for 16 bits), not clipped to white."""

import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from edgekit.data import ImageFolderReader, load_inputs
from edgekit.data.folder import decode_rgb, to_rgb8
from edgekit.data.labelled import LabelledFolder

# 16-bit levels either side of a rounding edge (128 and 65406 round down, 129 up), mid-grey, black, white.
LEVELS = np.array([0, 128, 129, 257, 32768, 40000, 65406, 65535], dtype=np.uint16)
RAMP = np.linspace(0, 65535, 24 * 32).astype(np.uint16).reshape(24, 32)


def write_png16(path, pixels: np.ndarray) -> None:
    """A 16-bit grayscale (H, W) or RGB (H, W, 3) PNG (PIL cannot write 16-bit RGB): the signature, IHDR,
    one zlib IDAT of unfiltered big-endian rows, and IEND."""
    pixels = np.asarray(pixels, dtype=">u2")
    height, width = pixels.shape[:2]
    color_type = 0 if pixels.ndim == 2 else 2

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    rows = b"".join(b"\x00" + pixels[y].tobytes() for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 16, color_type, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
                     + chunk(b"IEND", b""))


def expected_8bit(values) -> np.ndarray:
    return np.rint(np.asarray(values, dtype=np.float64) / 257).astype(int)


def test_16_bit_grayscale_png_is_scaled_not_clipped(tmp_path):
    Image.fromarray(RAMP).save(tmp_path / "gray16.png")  # PIL writes I;16 as a 16-bit PNG
    rgb, mode = decode_rgb(tmp_path / "gray16.png")
    assert mode == "I;16" and rgb.mode == "RGB"
    pixels = np.asarray(rgb).astype(int)
    assert np.array_equal(pixels[..., 0], pixels[..., 2])
    assert np.abs(pixels[..., 1] - expected_8bit(RAMP)).max() <= 1
    assert (pixels == 255).mean() < 0.01  # what the old decoder did: nearly everything saturated to white


def test_48_bit_rgb_png_is_scaled(tmp_path):
    """PIL decodes 16-bit RGB to its high byte, floor(v / 256): within 1 of round(v / 257)."""
    rgb16 = np.stack([RAMP, RAMP[::-1], 65535 - RAMP], axis=-1)
    write_png16(tmp_path / "rgb48.png", rgb16)
    rgb, _ = decode_rgb(tmp_path / "rgb48.png")
    assert np.abs(np.asarray(rgb).astype(int) - expected_8bit(rgb16)).max() <= 1


@pytest.mark.parametrize("mode", ["I;16", "I;16B"])
def test_16_bit_modes_round_each_level(mode):
    image = Image.frombytes(mode, (len(LEVELS), 1), LEVELS.astype("<u2" if mode == "I;16" else ">u2").tobytes())
    assert np.asarray(to_rgb8(image))[0, :, 0].tolist() == expected_8bit(LEVELS).tolist() == [
        0, 0, 1, 1, 128, 156, 254, 255]


def test_32_bit_integer_and_float_images():
    as_int32 = Image.fromarray(LEVELS.astype(np.int32)[None])  # mode I: a 16-bit file PIL decoded to 32 bits
    assert as_int32.mode == "I"
    assert np.asarray(to_rgb8(as_int32))[0, :, 1].tolist() == expected_8bit(LEVELS).tolist()
    small = Image.fromarray(np.array([[0, 17, 255]], dtype=np.int32))  # 8-bit values stay as they are
    assert np.asarray(to_rgb8(small))[0, :, 0].tolist() == [0, 17, 255]
    wide = Image.fromarray(np.array([[-5, 2**30, 2**31 - 1]], dtype=np.int32))
    assert np.asarray(to_rgb8(wide))[0, :, 0].tolist() == [0, 128, 255]
    unit = Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32))
    assert np.asarray(to_rgb8(unit))[0, :, 0].tolist() == [0, 128, 255]
    grey16_float = Image.fromarray(LEVELS.astype(np.float32)[None])
    assert np.asarray(to_rgb8(grey16_float))[0, :, 0].tolist() == expected_8bit(LEVELS).tolist()


def test_folder_readers_and_load_inputs_use_the_scaled_pixels(tmp_path):
    """Uniform images, so the resize and crop keep the value and the whole path can be compared exactly."""
    (tmp_path / "a").mkdir()
    Image.fromarray(np.full((40, 40), 40000, np.uint16)).save(tmp_path / "a" / "gray16.png")
    write_png16(tmp_path / "a" / "rgb48.png", np.full((40, 40, 3), [1000, 32768, 65535], np.uint16))
    want = np.array([[156, 156, 156], [4, 128, 255]])  # round(v / 257); the 48-bit one may be 1 lower

    def close(pixels) -> bool:
        return bool(np.abs(np.asarray(pixels, dtype=np.float64) - want).max() <= 1.001)

    assert close([image[8, 8] for image, _ in ImageFolderReader(tmp_path, size=(16, 16))])
    source = LabelledFolder(tmp_path, (16, 16))
    (batch, _), = source.batches(4)
    assert close(batch[:, 8, 8]) and source.converted["I;16"] == 1
    assert batch[0, 8, 8].tolist() == [156, 156, 156]
    inputs = load_inputs(tmp_path, 2, (1, 3, 16, 16), (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    assert close(inputs.array[:, :, 8, 8] * 255)
