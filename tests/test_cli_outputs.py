"""Issue 13, items 1-3: ``ambiseg-eval`` never clobbers an input, a link, a device, or a file's mode."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import threading

import pytest
from test_cli_data import write_dataset

from ambiseg_metrics.files.cli import main

BOOT = "50"


def run(capsys, *argv):
    code = main([*map(str, argv), "--no-progress", "--bootstrap", BOOT])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def data(tmp_path):
    preds, gts, _ = write_dataset(tmp_path, "folder", ".png", n_cases=2)
    return preds, gts


def _snapshot(root):
    return {p: p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------------------ item 1: inputs and twins
@pytest.mark.parametrize("flag", ["--out", "--json"])
def test_output_onto_an_input_mask_is_refused(tmp_path, capsys, data, flag):
    preds, gts = data
    before = _snapshot(tmp_path)
    victim = sorted(p for p in preds.rglob("*.png"))[0]
    code, _, err = run(capsys, preds, gts, flag, victim)
    assert code == 2, err
    assert str(victim) in err and "input" in err
    assert _snapshot(tmp_path) == before


def test_output_through_a_symlink_into_the_inputs_is_refused(tmp_path, capsys, data):
    preds, gts = data
    victim = sorted(gts.rglob("*.png"))[0]
    link = tmp_path / "innocent.csv"
    link.symlink_to(victim)
    before = _snapshot(tmp_path)
    code, _, err = run(capsys, preds, gts, "--out", link)
    assert code == 2, err
    assert _snapshot(tmp_path) == before and link.is_symlink()


def test_new_output_file_inside_an_input_root_is_refused(tmp_path, capsys, data):
    preds, gts = data
    code, _, err = run(capsys, preds, gts, "--out", gts / "results.csv")
    assert code == 2, err
    assert not (gts / "results.csv").exists()


@pytest.mark.parametrize("second", ["same", "link"])
def test_two_outputs_on_one_file_are_refused(tmp_path, capsys, data, second):
    preds, gts = data
    out = tmp_path / "r.out"
    other = out
    if second == "link":
        other = tmp_path / "alias.json"
        other.symlink_to(out)
    code, _, err = run(capsys, preds, gts, "--out", out, "--json", other)
    assert code == 2, err
    assert "same file" in err
    assert not out.exists()


# ------------------------------------------------------------------------------ item 2: links, FIFOs, devices
def test_symlinked_output_writes_the_target_and_keeps_the_link(tmp_path, capsys, data):
    preds, gts = data
    real_dir = tmp_path / "real"
    real_dir.mkdir()
    target = real_dir / "results.csv"
    target.write_text("old\n")
    link = tmp_path / "link.csv"
    link.symlink_to(target)
    code, _, err = run(capsys, preds, gts, "--out", link)
    assert code == 0, err
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.read_text().startswith("case,n_pred,n_gt")
    assert sorted(os.listdir(real_dir)) == ["results.csv"]


def test_dangling_symlink_creates_its_target(tmp_path, capsys, data):
    preds, gts = data
    link = tmp_path / "link.csv"
    link.symlink_to(tmp_path / "made.csv")
    code, _, err = run(capsys, preds, gts, "--out", link)
    assert code == 0, err
    assert link.is_symlink() and (tmp_path / "made.csv").read_text().startswith("case,")


def _null_device(tmp_path):
    """A character device to write to. As root, a private null-device node (so that a regression cannot
    replace the system's /dev/null, as the old writer did); otherwise /dev/null, which a non-root user
    cannot replace."""
    if os.geteuid() != 0:
        return "/dev/null"
    node = tmp_path / "null"
    os.mknod(node, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    return str(node)


def test_character_device_stays_a_device(tmp_path, capsys, data):
    preds, gts = data
    dev = _null_device(tmp_path)
    before = os.stat(dev)
    code, _, err = run(capsys, preds, gts, "--out", dev)
    assert code == 0, err
    after = os.stat(dev)
    assert stat.S_ISCHR(after.st_mode) and after.st_rdev == before.st_rdev and after.st_ino == before.st_ino


def test_fifo_is_written_not_replaced(tmp_path, capsys, data):
    preds, gts = data
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(open(fifo, "rb").read()), daemon=True)
    reader.start()
    code, _, err = run(capsys, preds, gts, "--out", fifo)
    reader.join(10)
    assert code == 0, err
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert got and got[0].startswith(b"case,n_pred,n_gt")


def test_dash_writes_the_csv_to_stdout_and_the_summary_to_stderr(data):
    preds, gts = data
    proc = subprocess.run(
        [sys.executable, "-m", "ambiseg_metrics", str(preds), str(gts), "--out", "-", "--bootstrap", BOOT],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("case,n_pred,n_gt") and len(lines) == 3
    assert "metric" in proc.stderr


# ------------------------------------------------------------------------------ item 3: modes
def test_new_file_gets_0666_minus_umask(tmp_path, capsys, data):
    preds, gts = data
    old = os.umask(0o027)
    try:
        code, _, err = run(capsys, preds, gts, "--out", tmp_path / "new.csv")
    finally:
        os.umask(old)
    assert code == 0, err
    assert stat.S_IMODE(os.stat(tmp_path / "new.csv").st_mode) == 0o640


@pytest.mark.parametrize("mode", [0o644, 0o600, 0o664])
def test_existing_file_keeps_its_mode(tmp_path, capsys, data, mode):
    preds, gts = data
    out = tmp_path / "r.csv"
    out.write_text("old")
    os.chmod(out, mode)
    code, _, err = run(capsys, preds, gts, "--out", out)
    assert code == 0, err
    assert stat.S_IMODE(os.stat(out).st_mode) == mode and out.read_text().startswith("case,")


# ------------------------------------------------------------------------------ what a person sees
def test_says_what_was_written_or_how_to_save(tmp_path, capsys, data):
    preds, gts = data
    code, out, _ = run(capsys, preds, gts, "--out", tmp_path / "r.csv", "--json", tmp_path / "s.json")
    assert code == 0
    assert f"wrote {tmp_path / 'r.csv'} (2 rows)" in out and f"wrote {tmp_path / 's.json'}" in out
    code, out, _ = run(capsys, preds, gts)
    assert code == 0 and "add --out results.csv" in out and "wrote" not in out


def test_quiet_prints_nothing_but_errors(tmp_path, capsys, data):
    preds, gts = data
    (tmp_path / "preds" / "zz").mkdir()  # a case without annotations: a warning with --allow-missing
    code, out, err = run(capsys, preds, gts, "--quiet", "--allow-missing", "--out", tmp_path / "r.csv")
    assert code == 0 and out == "" and err == ""
    assert (tmp_path / "r.csv").exists()
    code, out, err = run(capsys, preds, gts, "--quiet")
    assert code == 2 and out == "" and "error:" in err


def test_no_progress_bar_when_stderr_is_not_a_terminal(data):
    preds, gts = data
    argv = [sys.executable, "-m", "ambiseg_metrics", str(preds), str(gts), "--bootstrap", BOOT]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "\r" not in proc.stderr and "case/s" not in proc.stderr and "it/s" not in proc.stderr


def test_a_swallowed_signal_still_stops_the_run_before_any_output(tmp_path, monkeypatch, capsys):
    """A SIGINT whose exception a library swallowed (raised inside a __del__ or a gc callback, which
    Python only reports) is still on record: the run stops with 130 before it writes anything."""
    from ambiseg_metrics.files import cli, cli_process

    preds, gts, _ = write_dataset(tmp_path, "file", ".npy", n_cases=2)
    summarize = cli.summarize

    def swallowed(*args, **kwargs):
        cli_process.FIRED.append(2)  # what _on_signal records before it raises
        return summarize(*args, **kwargs)

    monkeypatch.setattr(cli, "summarize", swallowed)
    out = tmp_path / "r.csv"
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        code = main([str(preds), str(gts), "--out", str(out), "--no-progress", "--bootstrap", "10"])
    finally:  # main() leaves its routing in place after a (recorded) signal: not in pytest's process
        cli_process.FIRED.clear()
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    assert code == 130
    assert "interrupted, no output written" in capsys.readouterr().err
    assert not out.exists()
