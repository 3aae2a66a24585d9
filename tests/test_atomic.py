"""The one atomic writer (``ambiseg_metrics.files.atomic``): renames, links, devices, modes, failures."""

from __future__ import annotations

import io
import os
import stat

import pytest

from ambiseg_metrics.files.atomic import atomic_write, atomic_write_many


def test_atomic_write_replaces_and_leaves_no_temp(tmp_path):
    target = tmp_path / "out.csv"
    atomic_write(target, "first\n")
    atomic_write(target, "second\n")
    assert target.read_text() == "second\n"
    assert os.listdir(tmp_path) == ["out.csv"]


def test_failed_write_keeps_old_files_and_removes_temps(tmp_path, monkeypatch):
    a, b = tmp_path / "a.csv", tmp_path / "b.json"
    a.write_text("old a")
    calls = []
    real_replace = os.replace

    def failing_replace(src, dst):
        calls.append(dst)
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_many({a: "new a", b: "new b"})
    monkeypatch.setattr(os, "replace", real_replace)
    assert a.read_text() == "old a" and not b.exists()
    assert sorted(os.listdir(tmp_path)) == ["a.csv"]


def test_interrupted_staging_writes_nothing(tmp_path, monkeypatch):
    a, b = tmp_path / "a.csv", tmp_path / "b.json"
    real_fsync = os.fsync
    count = []

    def interrupt_second(fd):
        count.append(fd)
        if len(count) == 2:
            raise KeyboardInterrupt
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", interrupt_second)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_many({a: "x" * 10000, b: "y"})
    assert os.listdir(tmp_path) == []


def test_bytes_callable_and_mkdir(tmp_path):
    target = tmp_path / "a" / "b" / "ckpt.bin"
    with pytest.raises(FileNotFoundError):
        atomic_write(target, b"x")
    atomic_write(target, lambda fh: fh.write(b"\x00\x01"), mkdir=True)
    assert target.read_bytes() == b"\x00\x01"
    atomic_write(target, "é")
    assert target.read_bytes() == "é".encode()


def test_failing_callable_keeps_the_old_file(tmp_path):
    target = tmp_path / "ckpt.pt"
    target.write_bytes(b"old")

    def boom(fh: io.BufferedWriter) -> None:
        fh.write(b"half")
        raise RuntimeError("serialisation failed")

    with pytest.raises(RuntimeError):
        atomic_write(target, boom)
    assert target.read_bytes() == b"old" and os.listdir(tmp_path) == ["ckpt.pt"]


def test_link_followed_mode_kept_umask_applied(tmp_path):
    real = tmp_path / "real.txt"
    real.write_text("old")
    os.chmod(real, 0o640)
    link = tmp_path / "link.txt"
    link.symlink_to(real)
    assert atomic_write(link, "new") == str(real)
    assert link.is_symlink() and real.read_text() == "new"
    assert stat.S_IMODE(os.stat(real).st_mode) == 0o640
    old = os.umask(0o002)
    try:
        atomic_write(tmp_path / "fresh.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "fresh.txt").st_mode) == 0o664


def test_folder_target_is_refused(tmp_path):
    with pytest.raises(IsADirectoryError):
        atomic_write(tmp_path, "x")


def test_dash_is_stdout(capfdbinary):
    assert atomic_write_many({"-": "to stdout\n"}) == ["-"]
    assert capfdbinary.readouterr().out == b"to stdout\n"


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write any file")
def test_read_only_file_is_refused_not_replaced(tmp_path):
    target = tmp_path / "keep.csv"
    target.write_text("precious")
    os.chmod(target, 0o444)
    with pytest.raises(PermissionError):
        atomic_write(target, "new")
    assert target.read_text() == "precious" and os.listdir(tmp_path) == ["keep.csv"]
