import os
import stat

import pytest

from edgekit.errors import OutputError
from edgekit.fileio import ensure_writable_dir, staged_files


def test_staged_files_appear_together_on_commit(tmp_path):
    with staged_files() as staged:
        staged.write_bytes(tmp_path / "m.onnx", b"model")
        staged.write_text(tmp_path / "m.json", "{}")
        assert not (tmp_path / "m.onnx").exists()  # nothing visible before commit
        staged.commit()
    assert (tmp_path / "m.onnx").read_bytes() == b"model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "m.onnx"]


def test_failure_inside_block_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError):
        with staged_files() as staged:
            staged.write_bytes(tmp_path / "m.onnx", b"partial")
            raise RuntimeError("export step failed")
    assert list(tmp_path.iterdir()) == []


def test_staged_name_keeps_suffix(tmp_path):
    with staged_files() as staged:
        tmp = staged.write_bytes(tmp_path / "m.tflite", b"x")
        assert tmp.suffix == ".tflite" and tmp.name.startswith(".")


def test_unwritable_directory_is_one_line_error(tmp_path):
    # /proc refuses new directories even to root, which CI runs as.
    with pytest.raises(OutputError) as info:
        ensure_writable_dir("/proc/edgekit-out")
    assert "\n" not in str(info.value) and "--output" in str(info.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write to read-only directories")
def test_read_only_directory_is_rejected(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(stat.S_IRUSR | stat.S_IXUSR)
    with pytest.raises(OutputError):
        ensure_writable_dir(ro)


def test_output_path_that_is_a_file_is_rejected(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputError, match="--output"):
        ensure_writable_dir(blocker / "sub")


def test_published_files_get_umask_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        with staged_files() as staged:
            staged.write_bytes(tmp_path / "m.onnx", b"x")
            staged.commit()
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "m.onnx").stat().st_mode) == 0o644


def test_one_sha256_for_bytes_and_files(tmp_path):
    import hashlib

    from edgekit.fileio import sha256_bytes, sha256_file

    payload = bytes(range(256)) * 9000  # more than one 1 MiB read block
    (tmp_path / "blob").write_bytes(payload)
    assert sha256_file(tmp_path / "blob") == sha256_bytes(payload) == hashlib.sha256(payload).hexdigest()
