"""The headless-browser helper (``tests/browser.py``) sees what a reader's browser meets, and cleans up.

Small pages written here: a clean one must come back clean; one that reaches for the network, logs errors
and misses a file must have each of those reported; the network must really be off (a server on this
machine's loopback receives nothing); and no browser process may outlive ``open_page``, on success or on
timeout.
"""

from __future__ import annotations

import http.server
import struct
import threading
import zlib
from pathlib import Path

import browser
import pytest
from browser import group_members, open_page, require_chromium


@pytest.fixture
def chromium() -> str:
    return require_chromium()


@pytest.fixture
def spawned(monkeypatch) -> list:
    """Every browser process that open_page starts (process group id, profile folder)."""
    seen = []
    close = browser._Chromium.close

    def spy(self):
        seen.append((self.proc.pid, Path(self.profile)))
        close(self)

    monkeypatch.setattr(browser._Chromium, "close", spy)
    return seen


def assert_gone(spawned: list) -> None:
    assert spawned, "open_page started no browser"
    for pgid, profile in spawned:
        assert group_members(pgid) == [], f"browser processes left running: {group_members(pgid)}"
        assert not profile.exists(), f"browser profile left behind: {profile}"
        for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
            try:
                text = cmdline.read_bytes().decode(errors="replace")
            except OSError:
                continue
            assert str(profile) not in text, f"a process still uses the profile: {cmdline.parent.name}"


def png(width: int, height: int) -> bytes:
    """A grey PNG image (no imaging library needed)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\0" + b"\x80" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    body = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


def write(tmp_path: Path, body: str, head: str = "") -> Path:
    page = tmp_path / "page.html"
    html = f"<!doctype html><html><head><meta charset='utf-8'>{head}</head><body>{body}</body></html>"
    page.write_text(html, encoding="utf-8")
    return page


def test_clean_local_page(chromium, spawned, tmp_path: Path) -> None:
    (tmp_path / "fig.png").write_bytes(png(20, 10))
    page = write(tmp_path, """
        <p>Hello <b>reader</b></p>
        <img src="fig.png" width="40" height="20" alt="a figure">
        <svg width="50" height="30"><rect width="50" height="30" fill="teal"/></svg>
        <svg style="display:none"><symbol id="icon"><path d="M0 0h1v1z"/></symbol></svg>
        <svg width="16" height="16"><use href="#icon"/></svg>
        <script>console.log("just information"); console.info("also fine");</script>""")
    report = open_page(page, screenshot=tmp_path / "shots" / "page.png", width=400, height=300)
    assert report.console == [] and report.failed_requests == [] and report.network_requests == []
    assert "Hello reader" in report.text
    assert [(i["tag"], i["width"], i["height"], i["complete"]) for i in report.images] == [
        ("img", 40, 20, True), ("svg", 50, 30, True)]  # the sprite and the icon are no figures
    assert report.images[0]["src"] == (tmp_path / "fig.png").as_uri()
    assert report.screenshot == tmp_path / "shots" / "page.png"
    assert report.screenshot.read_bytes().startswith(b"\x89PNG")
    width, height = struct.unpack(">II", report.screenshot.read_bytes()[16:24])
    assert (width, height) == (400, 300)
    assert_gone(spawned)


def test_network_errors_and_missing_files_are_reported(chromium, spawned, tmp_path: Path) -> None:
    page = write(tmp_path, head="""
        <link rel="stylesheet" href="https://fonts.example.invalid/css?family=Roboto">
        <script src="https://cdn.example.invalid/npm/mathjax@4/tex-mml-chtml.js"></script>""", body="""
        <img src="missing.png" alt="gone"> <img src="http://images.example.invalid/a.png" alt="remote">
        <script>
          console.error("boom", 42); console.warn("careful");
          fetch("https://api.example.invalid/data").catch(() => {});
          setTimeout(() => { throw new Error("kaput"); }, 0);
        </script>""")
    report = open_page(page)
    remote = ["https://fonts.example.invalid/css?family=Roboto",
              "https://cdn.example.invalid/npm/mathjax@4/tex-mml-chtml.js",
              "http://images.example.invalid/a.png", "https://api.example.invalid/data"]
    assert sorted(report.network_requests) == sorted(remote)
    failed = " ".join(report.failed_requests)
    for url in [*remote, (tmp_path / "missing.png").as_uri()]:
        assert url in failed, (url, report.failed_requests)
    console = "\n".join(report.console)
    assert "error: boom 42" in console and "warning: careful" in console and "kaput" in console, console
    assert [i["complete"] for i in report.images] == [False, False]
    assert_gone(spawned)


def test_the_network_is_really_off(chromium, spawned, tmp_path: Path) -> None:
    # A server on this machine's loopback (the one address a test may use): the page must not reach it,
    # neither directly nor through the proxy settings.
    hits = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (the standard library's name)
            hits.append(self.path)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/probe"
        page = write(tmp_path, f'<img src="{url}.png"><script>fetch("{url}").catch(() => {{}});</script>')
        report = open_page(page)
    finally:
        server.shutdown()
        server.server_close()
    assert hits == [], f"the page reached the loopback server: {hits}"
    assert f"{url}.png" in report.network_requests and url in report.network_requests
    assert_gone(spawned)


def test_timeout_kills_the_browser(chromium, spawned, tmp_path: Path) -> None:
    page = write(tmp_path, "<script>while (true) {}</script>")  # the load event never comes
    with pytest.raises(TimeoutError, match="did not settle within 3 s"):
        open_page(page, timeout=3)
    assert_gone(spawned)


def test_missing_page(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.html"):
        open_page(tmp_path / "nope.html")


def test_no_chromium_skips_locally_and_fails_under_ci(monkeypatch) -> None:
    monkeypatch.setattr(browser, "chromium_path", lambda: None)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no Chromium found"):
        require_chromium()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="no Chromium found.*CI=true"):
        require_chromium()


def test_chromium_path_honours_the_environment(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CHROMIUM", str(tmp_path / "no-such-browser"))
    assert browser.chromium_path() is None
    fake = tmp_path / "my-chromium"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.setenv("CHROMIUM", str(fake))
    assert browser.chromium_path() == str(fake)
