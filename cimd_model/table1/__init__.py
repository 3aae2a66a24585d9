"""``cimd-table1``: reproduce Table 1 of the CIMD paper (Rahman et al., CVPR 2023) with one command.

For every data set and every model (Prob. U-Net, PHiSeg, Generalized Prob. U-Net, CIMD) the pipeline

1. trains the model (or reuses ``<out>/<data>/<model>/checkpoint.pt``; an interrupted run resumes),
2. draws ``n`` masks per test image into ``<out>/<data>/<model>/samples/<case>.npy`` (float32 (n, H, W)),
   next to the annotations ``<out>/<data>/gts/<case>.npy`` (uint8 (M, H, W)),
3. evaluates the *written files* with one :func:`ambiseg_metrics.evaluate` call per model and data set,
   plus -- where the true annotation distribution is known (AmbiBlobs) -- the GED against that
   distribution (:mod:`cimd_model.true_ged`),
4. writes ``<out>/table1.md`` and ``<out>/table1.csv`` (rows = methods, column groups = data sets; mean and
   seeded percentile-bootstrap 95% CI over test images), ``<out>/per_image.csv`` and, unless
   ``--no-figures``, ``<out>/figures/*.png`` (:mod:`cimd_model.figures`). Wall times go to
   ``<out>/timings.json`` only, so that a rerun reproduces the tables byte for byte.

Profiles (``--config``)
-----------------------
``paper``
    The models' ``paper`` configs (paper step counts and batch sizes, CIMD sampled with 1000 DDPM
    steps), all test images, n = 16. Needs a GPU (see ``docs/table1.md`` for the expected cost).
``cpu-small``
    The models' ``cpu-small`` configs unchanged on the full AmbiBlobs splits (64 px, 512 train / 64 test
    images), CIMD with 25 DDIM steps: an estimated 1.5-3 h on 2 CPU cores.
``table1``
    ``cpu-small`` architectures with fewer steps (400 for the baselines, 1000 for CIMD), 32 px AmbiBlobs
    (256 train / 32 test images), CIMD sampled with 10 stochastic DDIM steps (eta = 1): the whole table fits
    in 30 min on 2 CPU cores with ``--jobs 2`` (the committed synthetic table, ``docs/table1_results``).
``matched``
    The ``table1`` data and architectures with one training budget for every model (1000 steps of 8
    images), seeds 0, 1 and 2, CIMD sampled with 25 stochastic DDIM steps (eta 1), the setting the steps
    sweep of ``docs/cimd_sampling.md`` picked.
``table1-v0``
    The baselines' configs from before their papers' recipes, no CIMD (the fidelity check of
    ``docs/baselines.md``).
``tiny``
    A smoke test of the pipeline (3 steps of narrow models, 32 px, 8 train / 4 test images, n = 4).

Examples
--------
::

    cimd-table1 --config table1 --jobs 2 --out runs/table1
    cimd-table1 --data lidc-pickle:/data/data_lidc.pickle --config paper --n-samples 16 --out runs/lidc

Layout of the package: :mod:`.profiles` (run profiles), :mod:`.specs` (data sets), :mod:`.stages` (train /
sample with reuse), :mod:`.evaluate` (metrics through :mod:`ambiseg_metrics`), :mod:`.render` (tables and
figures), :mod:`.pipeline` (:func:`run_table1`), :mod:`.cli` (``cimd-table1``).
"""

from __future__ import annotations

from .cli import main, parser
from .evaluate import TRUE_GED, evaluate_model_samples, load_case_arrays, summarize_values
from .pipeline import run_table1
from .profiles import METHOD_LABELS, MODELS, PROFILES, Profile, model_config
from .render import PUBLISHED, per_image_csv, table_csv, table_markdown
from .specs import data_key, data_label, load_split, parse_data_specs

__all__ = [
    "METHOD_LABELS",
    "MODELS",
    "PROFILES",
    "PUBLISHED",
    "TRUE_GED",
    "Profile",
    "data_key",
    "data_label",
    "evaluate_model_samples",
    "load_case_arrays",
    "load_split",
    "main",
    "model_config",
    "parse_data_specs",
    "parser",
    "per_image_csv",
    "run_table1",
    "summarize_values",
    "table_csv",
    "table_markdown",
]
