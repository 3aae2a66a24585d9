"""Make docs/_static/compare_report.png: the HTML report of `ambiseg-eval compare` on the shipped examples,
as headless Chromium shows it (top of the page, 1280 x 1800 CSS pixels, palette PNG).

Run from the repository root: ``python docs/figures/compare_report_screenshot.py``.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

from browser import open_page  # noqa: E402

from ambiseg_metrics.examples import example_compare_paths  # noqa: E402
from ambiseg_metrics.files.cli import main  # noqa: E402


def make(out: Path = ROOT / "docs" / "_static" / "compare_report.png") -> Path:
    from PIL import Image

    good, worse, gts = example_compare_paths()
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.html"
        code = main(["compare", str(good), str(worse), str(gts), "--names", "good,worse", "--no-progress",
                     "--html", str(report)])
        if code != 0:
            raise SystemExit(code)
        shot = Path(tmp) / "shot.png"
        page = open_page(report, screenshot=shot, width=1280, height=1800)
        if page.console or [u for u in page.network_requests if not u.startswith(("data:", "file:"))]:
            raise SystemExit(f"the report did not load cleanly: {page.console} {page.network_requests}")
        Image.open(shot).convert("RGB").quantize(colors=128).save(out, optimize=True)
    return out


if __name__ == "__main__":
    import argparse

    argparse.ArgumentParser(description=__doc__.split("\n")[0]).parse_args()
    print(make())
