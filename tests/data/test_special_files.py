"""A named pipe, socket or device among the images (or as --data itself) is skipped, never opened.

Opening a named pipe blocks until a writer appears, so every read here runs under a deadline: a regression
fails the test instead of hanging the suite.
"""

import os
import socket
import stat
import subprocess
import sys
import threading

import numpy as np
import pytest
from PIL import Image

from edgekit.data import ImageFolderReader, load_inputs
from edgekit.data.labelled import LabelledFolder, open_labelled
from edgekit.errors import DataError
from edgekit.fileio import NotRegularFileError, open_regular_file

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX named pipes")

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
DEADLINE_S = 20


def within_deadline(call, *fifos):
    """``call()``'s result, or a test failure if it is still blocked after DEADLINE_S (the blocked open is then
    released by opening each FIFO for writing, so the thread does not outlive the test)."""
    outcome = {}

    def run():
        try:
            outcome["value"] = call()
        except BaseException as exc:  # re-raised in the test's thread
            outcome["error"] = exc

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(DEADLINE_S)
    if worker.is_alive():
        for fifo in fifos:
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        worker.join(5)
        pytest.fail(f"reading hung on a named pipe for {DEADLINE_S} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


@pytest.fixture
def folder_with_special_files(tmp_path):
    """Two real images in class folders, beside a FIFO, a socket and a link to a device named like images."""
    for cls, color in (("cat", (200, 20, 20)), ("dog", (20, 200, 20))):
        (tmp_path / cls).mkdir()
        Image.new("RGB", (40, 30), color).save(tmp_path / cls / "photo.png")
    os.mkfifo(tmp_path / "cat" / "pipe.jpg")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tmp_path / "dog" / "socket.png"))
    if os.path.exists("/dev/zero"):
        (tmp_path / "dog" / "zero.png").symlink_to("/dev/zero")
    yield tmp_path
    sock.close()


def test_reader_skips_and_counts_files_that_are_not_regular(folder_with_special_files):
    root = folder_with_special_files
    reader = ImageFolderReader(root, size=(16, 16))
    images = within_deadline(lambda: list(reader), root / "cat" / "pipe.jpg")
    assert [label for _, label in images] == [0, 1] and len(reader) == 2
    special = 3 if (root / "dog" / "zero.png").exists() else 2
    assert reader.skipped == special == len(reader.skipped_files)
    assert reader.skip_reasons[str(root / "cat" / "pipe.jpg")] == "a named pipe (FIFO), not a regular file"
    assert reader.skip_reasons[str(root / "dog" / "socket.png")] == "a socket, not a regular file"
    if special == 3:
        assert reader.skip_reasons[str(root / "dog" / "zero.png")] == "a character device, not a regular file"
    list(reader)
    assert reader.skipped == special  # recounted per pass, not accumulated


def test_load_inputs_and_labelled_folder_skip_them(folder_with_special_files):
    root = folder_with_special_files
    fifo = root / "cat" / "pipe.jpg"
    inputs = within_deadline(lambda: load_inputs(root, 8, (1, 3, 16, 16), MEAN, STD), fifo)
    assert inputs.array.shape == (2, 3, 16, 16) and inputs.skipped >= 2
    assert f"({inputs.skipped} unreadable skipped)" in inputs.description
    source = LabelledFolder(root, (16, 16))
    batches = within_deadline(lambda: list(source.batches(4)), fifo)
    assert np.concatenate([labels for _, labels in batches]).tolist() == [0, 1]
    assert source.skipped == inputs.skipped and str(fifo) in source.skip_reasons


def test_folder_of_only_special_files_is_a_data_error(tmp_path):
    os.mkfifo(tmp_path / "a.png")
    with pytest.raises(DataError, match=r"holds no regular image files .*a\.png is a named pipe \(FIFO\)") as err:
        within_deadline(lambda: ImageFolderReader(tmp_path), tmp_path / "a.png")
    assert "\n" not in str(err.value)


def test_data_path_that_is_a_fifo_is_a_one_line_data_error(tmp_path):
    fifo = tmp_path / "images"
    os.mkfifo(fifo)
    expected = r"is not a folder: it is a named pipe \(FIFO\); pass"
    with pytest.raises(DataError, match=expected):
        within_deadline(lambda: load_inputs(fifo, 2, (1, 3, 16, 16), MEAN, STD), fifo)
    with pytest.raises(DataError, match=expected):
        within_deadline(lambda: ImageFolderReader(fifo), fifo)
    with pytest.raises(DataError, match=expected):
        within_deadline(lambda: open_labelled(fifo, (16, 16)), fifo)


def test_open_regular_file_refuses_a_fifo_without_blocking(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(NotRegularFileError, match="is a named pipe"):
        within_deadline(lambda: open_regular_file(fifo), fifo)
    (tmp_path / "plain").write_bytes(b"bytes")
    with open_regular_file(tmp_path / "plain") as handle:
        assert handle.read() == b"bytes" and stat.S_ISREG(os.fstat(handle.fileno()).st_mode)


def test_export_with_a_fifo_among_the_parity_images(tmp_path):
    """The issue as a user met it: `edgekit export --data DIR` with a FIFO in DIR hung."""
    data = tmp_path / "images"
    data.mkdir()
    for i in range(3):
        Image.new("RGB", (64, 64), (60 * i, 90, 30)).save(data / f"{i}.png")
    os.mkfifo(data / "pipe.png")
    try:
        result = subprocess.run(
            [sys.executable, "-m", "edgekit.cli", "export", "--model", "shufflenet_v2_digits",
             "--output", str(tmp_path / "out"), "--data", str(data)],
            capture_output=True, text=True, timeout=120,
        )
    except subprocess.TimeoutExpired:  # run() has killed it
        pytest.fail("edgekit export hung on a named pipe in --data")
    assert result.returncode == 0, result.stderr
    assert "3 images from" in result.stdout and "(1 unreadable skipped)" in result.stdout
