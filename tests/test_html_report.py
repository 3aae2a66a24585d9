"""The HTML report: self-contained, every figure present and non-blank, checked in headless Chromium."""

from __future__ import annotations

import base64
import io
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from browser import chromium_path, open_page

from ambiseg_metrics.examples import example_compare_paths
from ambiseg_metrics.files.cli import main

pytest.importorskip("matplotlib")


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("html")
    good, worse, gts = example_compare_paths()
    single, compare = tmp / "single.html", tmp / "compare.html"
    assert main(["--example", "--no-progress", "--bootstrap", "200", "--html", str(single),
                 "--sample-curve", "--sample-repeats", "2"]) == 0
    assert main(["compare", str(good), str(worse), str(gts), "--names", "good,worse", "--no-progress",
                 "--bootstrap", "200", "--permutations", "500", "--html", str(compare)]) == 0
    return single, compare


def pngs(text: str) -> list[np.ndarray]:
    import imageio.v3 as iio

    return [iio.imread(io.BytesIO(base64.b64decode(m)))
            for m in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)]


def not_blank(img: np.ndarray) -> bool:
    flat = img.reshape(-1, img.shape[-1]) if img.ndim == 3 else img.reshape(-1, 1)
    return img.shape[0] > 10 and img.shape[1] > 10 and len(np.unique(flat, axis=0)) > 2


def test_reports_are_self_contained_with_every_section(reports):
    single, compare = reports
    for path, n_images in ((single, 1 + 3 + 1), (compare, 1 + 3 * 2)):
        text = path.read_text()
        assert "<script" not in text.lower()
        assert not re.search(r'(src|href)="(?!data:)', text), "a resource outside the file"
        images = pngs(text)
        assert len(images) == n_images == text.count("<img ")
        assert all(not_blank(im) for im in images)
        for heading in ("Summary over cases", "Distributions over cases", "Worst, median and best cases",
                        "Conventions", "Command line"):
            assert heading in text
    text = compare.read_text()
    assert "Paired comparison" in text and "good" in text and "worse" in text
    assert "ambiseg-eval compare" in text and "--names good,worse" in text
    assert "How many samples are enough" in single.read_text() and "V-statistic" in single.read_text()


def test_matplotlib_only_when_a_report_is_built():
    code = ("import sys\nfrom ambiseg_metrics.files import cli, cli_report, html, compare\n"
            "cli.build_parser(); cli_report.build_compare_parser()\nprint('matplotlib' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_report_in_a_real_browser(reports, tmp_path):
    if chromium_path() is None:
        if os.environ.get("CI") == "true":
            pytest.fail("Chromium is missing in CI")
        pytest.skip("Chromium is not installed (Debian package `chromium`)")
    for path in reports:
        shot = tmp_path / f"{path.stem}.png"
        page = open_page(path, screenshot=shot, width=1280, height=1600)
        assert page.console == [], page.console
        assert page.failed_requests == []
        own = path.resolve().as_uri()
        outside = [u for u in page.network_requests if not u.startswith("data:") and u != own]
        assert outside == [], outside
        assert "Summary over cases" in page.text and "ged_cross" in page.text
        assert len(page.images) == path.read_text().count("<img ")
        for im in page.images:
            assert im["complete"] and im["width"] > 50 and im["height"] > 50, im
        import imageio.v3 as iio

        assert not_blank(iio.imread(shot))


def test_the_browser_check_can_fail(tmp_path):
    """A page with a console error and an outside request is reported as such."""
    if chromium_path() is None:
        pytest.skip("Chromium is not installed")
    bad = tmp_path / "bad.html"
    bad.write_text('<!DOCTYPE html><html><body><p>hello</p><img src="http://127.0.0.1:9/x.png">'
                   '<script>console.error("boom")</script></body></html>')
    page = open_page(bad)
    assert any("boom" in c for c in page.console)
    assert "http://127.0.0.1:9/x.png" in page.network_requests and page.failed_requests
    assert page.images[0]["complete"] is False and page.text.strip().startswith("hello")


def test_case_grid_3d_and_case_picking():
    from ambiseg_metrics.files.cases import CaseTable
    from ambiseg_metrics.files.figures import binarize, case_grid, shown_slice
    from ambiseg_metrics.files.html import pick_cases

    rng = np.random.default_rng(0)
    preds, gts = rng.random((5, 4, 16, 16)) > 0.7, np.zeros((3, 4, 16, 16), bool)
    gts[:, 2, 4:9, 4:9] = True
    p2, g2, where = shown_slice(preds, gts)
    assert p2.shape == (5, 16, 16) and g2[:, 4:9, 4:9].all() and "slice 2 of 4" in where
    import imageio.v3 as iio

    assert not_blank(iio.imread(io.BytesIO(case_grid(preds, gts, "3d"))))
    assert binarize(np.array([0.2, 0.6]), 0.5).tolist() == [False, True]
    assert binarize(np.array([0, 3]), 0.5).tolist() == [False, True]
    t = CaseTable([{"case": c, "n_pred": 2, "n_gt": 2, "ged": v}
                   for c, v in [("a", 0.3), ("b", float("nan")), ("c", 0.1), ("d", 0.2)]], ("ged",))
    assert pick_cases(t, "ged", "lower") == [("worst", "a"), ("median", "d"), ("best", "c")]
    assert pick_cases(t, "ged", "higher") == [("worst", "c"), ("median", "d"), ("best", "a")]
