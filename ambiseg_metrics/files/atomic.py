"""The one atomic file writer: what ``ambiseg-eval`` and the model tools use to write a user's files.

Rules (each one tested in ``tests/test_atomic.py``):

* a regular file (or a new one) is written to a temporary file in the same folder, flushed and
  ``fsync``-ed, then renamed over the target with :func:`os.replace`, and the folder is ``fsync``-ed:
  at every moment the target is either the complete old file or the complete new one;
* a symbolic link is followed and its *target* is written that way (the link itself stays a link);
* a target that is not a regular file (a FIFO, ``/dev/null``, a terminal, another character device) is
  opened and written directly: it is never renamed over;
* ``-`` means standard output;
* a new file gets mode ``0666 & ~umask`` (as ``open()`` would give it); an existing file keeps its mode
  (and, where permitted, its owner and group), and one its user may not write is refused, as ``open()``
  would refuse it;
* :func:`atomic_write_many` stages every regular file before renaming any: a failure before the renames
  leaves all targets unchanged.
"""

from __future__ import annotations

import os
import stat
import sys
import tempfile
import threading
from collections.abc import Callable, Mapping
from typing import BinaryIO

__all__ = ["STDOUT", "Payload", "atomic_write", "atomic_write_many", "resolve_target"]

#: The path that stands for standard output.
STDOUT = "-"

#: What to write: text (UTF-8), bytes, or a callable that writes into a binary file object.
Payload = str | bytes | Callable[[BinaryIO], object]

_UMASK_LOCK = threading.Lock()


def _umask() -> int:
    with _UMASK_LOCK:  # os.umask can only be read by setting it
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def resolve_target(path: str | os.PathLike) -> str:
    """The file a write to ``path`` lands in: ``-`` stays ``-``; symbolic links are followed.

    A dangling link resolves to the (missing) file it points to, which is then created.
    """
    p = os.fspath(path)
    if p == STDOUT:
        return STDOUT
    return os.path.realpath(p)


def _write_payload(fh: BinaryIO, payload: Payload) -> None:
    if isinstance(payload, str):
        fh.write(payload.encode("utf-8"))
    elif isinstance(payload, (bytes, bytearray, memoryview)):
        fh.write(payload)
    elif callable(payload):
        payload(fh)
    else:
        raise TypeError(f"cannot write a {type(payload).__name__}; give str, bytes or a callable")


def _fsync_dir(folder: str) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems do not fsync folders
        pass
    finally:
        os.close(fd)


def _write_direct(target: str, payload: Payload) -> None:
    """Write into an existing non-regular file (FIFO, device) or standard output, without renaming."""
    if target == STDOUT:
        sys.stdout.flush()
        _write_payload(sys.stdout.buffer, payload)
        sys.stdout.buffer.flush()
        return
    fd = os.open(target, os.O_WRONLY)  # never O_CREAT or O_TRUNC: the node exists and stays what it is
    with os.fdopen(fd, "wb") as fh:
        _write_payload(fh, payload)


def _stage(target: str, payload: Payload) -> str:
    """Write ``payload`` to a temporary file next to ``target`` (fsync-ed, final mode); return its path."""
    folder, name = os.path.split(target)
    try:
        st = os.stat(target)
    except FileNotFoundError:
        st = None
    if st is not None and not os.access(target, os.W_OK):  # as open(target, "w") would refuse it
        raise PermissionError(13, "Permission denied (the file is not writable)", target)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder or ".")
    try:
        with os.fdopen(fd, "wb") as fh:
            _write_payload(fh, payload)
            fh.flush()
            os.fsync(fh.fileno())
            if st is None:
                os.fchmod(fh.fileno(), 0o666 & ~_umask())
            else:
                os.fchmod(fh.fileno(), stat.S_IMODE(st.st_mode))
                try:
                    os.fchown(fh.fileno(), st.st_uid, st.st_gid)
                except OSError:  # not permitted for a non-owner: the file becomes ours, mode kept
                    pass
    except BaseException:
        _unlink(tmp)
        raise
    return tmp


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _is_direct(target: str) -> bool:
    """True for standard output and for existing targets that are not regular files."""
    if target == STDOUT:
        return True
    try:
        st = os.stat(target)
    except FileNotFoundError:
        return False
    if stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(f"{target}: is a folder")
    if stat.S_ISSOCK(st.st_mode):
        raise OSError(f"{target}: is a socket; cannot write a file there")
    return not stat.S_ISREG(st.st_mode)


def atomic_write_many(payloads: Mapping[str | os.PathLike, Payload], *, mkdir: bool = False) -> list[str]:
    """Write several files so that a failure before the renames leaves every one of them unchanged.

    Parameters
    ----------
    payloads : mapping path -> str, bytes or callable(file)
        Text is written as UTF-8 (no newline translation); a callable receives a binary file object.
    mkdir : bool, default False
        Create missing parent folders of regular-file targets.

    Returns
    -------
    list of str
        The resolved targets, in the order given.
    """
    jobs = [(resolve_target(path), payload) for path, payload in payloads.items()]
    staged: list[tuple[str, str]] = []
    direct: list[tuple[str, Payload]] = []
    try:
        for target, payload in jobs:
            if _is_direct(target):
                direct.append((target, payload))
                continue
            if mkdir:
                os.makedirs(os.path.dirname(target) or ".", exist_ok=True)
            staged.append((_stage(target, payload), target))
        for tmp, target in staged:
            os.replace(tmp, target)
        for folder in dict.fromkeys(os.path.dirname(t) or "." for _, t in staged):
            _fsync_dir(folder)
    finally:
        for tmp, _ in staged:
            _unlink(tmp)
    for target, payload in direct:
        _write_direct(target, payload)
    return [target for target, _ in jobs]


def atomic_write(path: str | os.PathLike, payload: Payload, *, mkdir: bool = False) -> str:
    """Write one file by the rules of this module; return the resolved target (``-`` for stdout)."""
    return atomic_write_many({path: payload}, mkdir=mkdir)[0]
