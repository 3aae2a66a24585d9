"""Equations that render without a network: MathJax is served from the built site itself.

``sphinx.ext.mathjax`` points every page with math at a CDN, so a reader without internet access (many
hospital and cluster workstations) sees raw LaTeX. This extension keeps Sphinx's MathJax renderer but takes
the script from the ``django-static-mathjax`` package (the official MathJax 3.2.2 distribution on PyPI, in
the ``[docs]`` extra; it needs no Django at all) and copies it, with its Apache-2.0 licence, to
``_static/mathjax/`` of the built site.

The one file served is ``tex-svg-full.js``: TeX input with every TeX extension compiled in (nothing is
loaded on demand) and SVG output (glyphs are paths inside the script, so no font files are fetched, which a
page opened from ``file://`` could not do reliably). ``mathjax_config.js`` beside this file configures it:
an equation that does not typeset is reported on the browser console (``tests/test_docs.py`` opens every
page in headless Chromium and fails on it).
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

from sphinx.errors import ExtensionError

#: The file of the MathJax distribution that the pages load, relative to its ``es5`` folder.
SCRIPT = "tex-svg-full.js"
#: Where the pages find it, relative to the site's ``_static`` folder.
TARGET = "mathjax"
#: MathJax settings (TeX errors on the console), inlined into every page with math.
CONFIG_JS = Path(__file__).resolve().with_name("mathjax_config.js")
INSTALL_HINT = "pip install django-static-mathjax (part of the [docs] extra: pip install -e '.[docs]')"


def mathjax_distribution() -> Path:
    """The MathJax distribution installed by ``django-static-mathjax`` (holds ``es5/`` and ``LICENSE``)."""
    spec = importlib.util.find_spec("mathjax")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        folder = Path(location) / "static" / "mathjax"
        if (folder / "es5" / SCRIPT).is_file() and (folder / "LICENSE").is_file():
            return folder
    raise ExtensionError(f"offline math: no MathJax distribution with es5/{SCRIPT} found; {INSTALL_HINT}")


def _use_local_mathjax(app, config) -> None:
    mathjax_distribution()  # fail at the start of the build, not after it
    config.mathjax_path = f"{TARGET}/{SCRIPT}"  # relative: Sphinx prefixes it with _static/
    # settings that need JavaScript (a TeX error is reported on the console), inlined in every math page
    config.mathjax_config_path = str(CONFIG_JS)  # Sphinx joins it to confdir: absolute stays as is


def _copy_mathjax(app, exception) -> None:
    if exception is not None or app.builder.format != "html":
        return
    source = mathjax_distribution()
    target = Path(app.outdir) / "_static" / TARGET
    target.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source / "es5" / SCRIPT, target / SCRIPT)
    shutil.copyfile(source / "LICENSE", target / "LICENSE")


def setup(app):
    app.setup_extension("sphinx.ext.mathjax")
    app.connect("config-inited", _use_local_mathjax)
    app.connect("build-finished", _copy_mathjax)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
