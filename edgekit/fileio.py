"""Writing output files so that a failure never leaves a half-written file behind, and reading input files
without hanging on a named pipe or a device."""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from edgekit.errors import OutputError


def ensure_writable_dir(path: str | os.PathLike) -> Path:
    """Create ``path`` if needed and prove it is writable.

    Returns the directory as a Path. Raises OutputError (one line, naming the directory) when it cannot be
    created or written, before any expensive work starts.
    """
    directory = Path(path)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".edgekit-probe-"):
            pass
    except OSError as exc:
        reason = exc.strerror or exc.__class__.__name__
        raise OutputError(
            f"cannot write to output directory {str(directory)!r} ({reason}); pass --output with a writable directory"
        ) from None
    return directory


class StagedFiles:
    """Files written under temporary names and renamed into place together on ``commit``.

    Used as a context manager: if the block raises, every staged temporary file is removed, so a failed
    export leaves nothing behind. Renames are atomic per file (same directory, ``os.replace``).
    """

    def __init__(self) -> None:
        self._staged: list[tuple[Path, Path]] = []
        self._committed = False

    def write_bytes(self, path: str | os.PathLike, data: bytes) -> Path:
        """Write ``data`` to a temporary file beside ``path``; returns the temporary path."""
        final = Path(path)
        # The temporary name keeps the suffix so runtimes that dispatch on it can open the staged file.
        fd, tmp_name = tempfile.mkstemp(dir=final.parent, prefix=f".{final.stem}.", suffix=f".tmp{final.suffix}")
        tmp = Path(tmp_name)
        self._staged.append((tmp, final))
        try:
            # mkstemp creates 0600; published files get the usual permissions (0666 less the umask).
            os.fchmod(fd, 0o666 & ~_current_umask())
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
        except OSError as exc:
            raise OutputError(
                f"cannot write {final} ({exc.strerror}); free disk space or choose another --output"
            ) from None
        return tmp

    def write_text(self, path: str | os.PathLike, text: str) -> Path:
        return self.write_bytes(path, text.encode("utf-8"))

    def commit(self) -> None:
        for tmp, final in self._staged:
            os.replace(tmp, final)
        self._committed = True

    def discard(self) -> None:
        for tmp, _ in self._staged:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        self._staged.clear()

    def __enter__(self) -> StagedFiles:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None or not self._committed:
            self.discard()


@contextlib.contextmanager
def staged_files() -> Iterator[StagedFiles]:
    """Context manager form of StagedFiles; call ``commit()`` inside the block to publish the files."""
    with StagedFiles() as staged:
        yield staged


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of ``data``: the one file hash edgekit records (exports, benchmarks, downloads, vetting)."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of the file at ``path``, read in 1 MiB blocks (``sha256_bytes`` of its content). Raises
    OSError when it cannot be read."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class NotRegularFileError(OSError):
    """A path that names a named pipe, socket, device or folder where a file was expected; ``kind`` says
    which (``file_type_name``)."""

    def __init__(self, path: str | os.PathLike, kind: str) -> None:
        super().__init__(f"{path} is a {kind}, not a regular file")
        self.kind = kind


def file_type_name(mode: int) -> str:
    """What an ``st_mode`` is, in words: ``regular file``, ``named pipe (FIFO)``, ``socket``..."""
    for test, name in ((stat.S_ISREG, "regular file"), (stat.S_ISDIR, "folder"), (stat.S_ISFIFO, "named pipe (FIFO)"),
                       (stat.S_ISSOCK, "socket"), (stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device")):
        if test(mode):
            return name
    return "special file"


def open_regular_file(path: str | os.PathLike) -> BinaryIO:
    """Open ``path`` for binary reading if it is a regular file (symbolic links followed).

    Opening a named pipe blocks until something writes to it and reading a device may never end, so anything
    else raises ``NotRegularFileError`` naming what the path is. The open itself does not block, so a file
    swapped for a pipe after the check cannot hang the caller either. Other failures raise their OSError.
    """
    mode = os.stat(path).st_mode
    if not stat.S_ISREG(mode):
        raise NotRegularFileError(path, file_type_name(mode))
    nonblocking = getattr(os, "O_NONBLOCK", 0)
    fd = os.open(path, os.O_RDONLY | nonblocking | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_BINARY", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotRegularFileError(path, file_type_name(mode))
        if nonblocking:
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
