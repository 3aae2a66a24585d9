"""Sphinx configuration of the ambiseg-metrics documentation.

Build (warnings are errors)::

    python -m sphinx -W --keep-going -b html docs docs/_build/html

Everything shown as a number or a figure is computed at build time from the code of this repository
(``docs/figures/*.py`` through matplotlib's ``plot`` directive and ``docs/_ext/ambiseg_docs.py``);
Markdown written next to the code (``docs/*.md``, ``benchmarks/RESULTS.md``) is included with
``myst-parser``.
"""

from __future__ import annotations

import importlib.util
import os
import re
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(DOCS / "_ext"))
os.environ.setdefault("MPLBACKEND", "Agg")

import ambiseg_metrics  # noqa: E402

# -- project ----------------------------------------------------------------------------------------
project = "ambiseg-metrics"
author = "ambiseg-metrics developers"
copyright = "ambiseg-metrics developers"
release = ambiseg_metrics.__version__
version = release

# -- extensions -------------------------------------------------------------------------------------
extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "offline_math",  # MathJax served from the site itself (docs/_ext/offline_math.py): no CDN
    "sphinx.ext.viewcode",
    "myst_parser",
    "matplotlib.sphinxext.plot_directive",
    "ambiseg_docs",
]

# Only the reStructuredText pages are documents; the Markdown files beside them are written by the code's
# owners and pulled into those pages with the ``optional-include`` directive.
source_suffix = {".rst": "restructuredtext"}
exclude_patterns = ["_build", "**.md", "figures", "_ext", "Thumbs.db", ".DS_Store"]
root_doc = "index"

# -- autodoc / napoleon (numpy-style docstrings) -----------------------------------------------------
autodoc_default_options = {"member-order": "bysource"}
autodoc_typehints = "signature"
autodoc_preserve_defaults = False  # option defaults are markers whose repr is the default
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
napoleon_use_ivar = True
# torch is installed in CI (the [model] extra); mock it only where it is missing so the build still works.
autodoc_mock_imports = [] if importlib.util.find_spec("torch") else ["torch"]

# -- Markdown (myst) --------------------------------------------------------------------------------
myst_enable_extensions = ["dollarmath", "colon_fence"]
myst_heading_anchors = 3
#: Included Markdown file -> the page that shows it (links between the included files point there).
optional_include_pages = {
    "README.md": "getting_started",
    "conventions_table.md": "conventions",
    "distributed.md": "distributed",
    "RESULTS.md": "benchmarks",
    "cimd_sampling.md": "cimd_model",
    "cimd_ablation.md": "cimd_model",
    "table1.md": "cimd_model",
    "baselines.md": "baselines",
}

# -- matplotlib plot directive: figures are made at build time from docs/figures/*.py ----------------
plot_include_source = False
plot_html_show_source_link = False
plot_html_show_formats = False
plot_formats = [("png", 110)]
plot_basedir = str(DOCS)
plot_rcparams = {"savefig.bbox": "tight"}

# -- HTML -------------------------------------------------------------------------------------------
html_theme = "furo"
html_title = f"ambiseg-metrics {release}"
html_static_path: list[str] = []  # no custom assets
pygments_style = "sphinx"


# -- docstring hook ---------------------------------------------------------------------------------
# The library writes array shapes as ``(N, *spatial)`` in plain docstring text (readable in ``help()``);
# in reStructuredText a lone ``*`` opens emphasis, so escape it outside inline literals.
_STAR_SHAPE = re.compile(r"(?<![\\*\w])\*(?=spatial\b)")


def _escape_shape_stars(app, what, name, obj, options, lines: list[str]) -> None:
    if what == "data" and type(obj).__doc__ and lines and lines[0] == type(obj).__doc__.splitlines()[0]:
        lines.clear()  # a module-level dict/tuple without a doc comment: not the builtin type's docstring
    for i, line in enumerate(lines):
        parts = line.split("``")
        parts[::2] = [_STAR_SHAPE.sub(r"\\*", part) for part in parts[::2]]
        lines[i] = "``".join(parts)


def setup(app) -> None:
    app.connect("autodoc-process-docstring", _escape_shape_stars)
