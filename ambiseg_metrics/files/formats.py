"""Result files in the shapes other tools read: grand-challenge ``metrics.json`` and nnU-Net ``summary.json``.

grand-challenge (``--format grand-challenge`` → ``metrics.json``)
    The shape the evaluation containers built with ``evalutils`` write to ``/output/metrics.json``: ``case``
    is the per-case table in pandas ``DataFrame.to_dict()`` orientation (column → row index as a string →
    value), with the columns ``case``, ``n_pred``, ``n_gt`` and every metric; ``aggregates`` maps every
    numeric column to ``count``, ``mean``, ``std`` (ddof=1), ``min``, ``25pc``, ``50pc``, ``75pc``,
    ``max`` over the cases where it is defined (pandas ``describe()``, ``%`` written ``pc`` as evalutils
    does)::

        {"case": {"case": {"0": "case_001", "1": "case_002"}, "ged": {"0": 0.31, "1": 0.42}, ...},
         "aggregates": {"ged": {"count": 2, "mean": 0.365, "std": 0.0778, "min": 0.31, "25pc": 0.3375,
                                "50pc": 0.365, "75pc": 0.3925, "max": 0.42}, ...}}

nnU-Net (``--format nnunet`` → ``summary.json``)
    The shape of nnU-Net v2's ``compute_metrics_on_folder`` (``nnunetv2/evaluation/evaluate_predictions.py``):
    ``metric_per_case`` is a list with one entry per case, ``{"metrics": {"1": {<metric>: value}},
    "prediction_file": ..., "reference_file": ...}``; ``mean`` maps the label key to the mean of every
    metric over cases (NaN-ignoring, as nnU-Net's ``np.nanmean``); ``foreground_mean`` is the mean over the
    foreground labels. The masks here are binary, so there is one label, ``"1"``::

        {"metric_per_case": [{"metrics": {"1": {"ged": 0.31, ...}}, "prediction_file": "preds/case_001.npz",
                              "reference_file": "gts/case_001"}, ...],
         "mean": {"1": {"ged": 0.365, ...}}, "foreground_mean": {"ged": 0.365, ...}}

Undefined values (NaN) are written as ``null`` (JSON has no NaN).
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import numpy as np

from .cases import CaseTable
from .report import json_number

__all__ = ["FORMATS", "grand_challenge_doc", "nnunet_doc", "format_text"]

#: ``--format`` name → the file name written.
FORMATS: dict[str, str] = {"grand-challenge": "metrics.json", "nnunet": "summary.json"}

_QUANTILES = (("25pc", 0.25), ("50pc", 0.5), ("75pc", 0.75))


def _describe(x: np.ndarray) -> dict[str, object]:
    x = x[~np.isnan(x)]
    out: dict[str, object] = {"count": int(x.size)}
    if x.size == 0:
        return {**out, "mean": None, "std": None, "min": None, **dict.fromkeys(k for k, _ in _QUANTILES),
                "max": None}
    out["mean"] = float(x.mean())
    out["std"] = float(x.std(ddof=1)) if x.size > 1 else None
    out["min"] = float(x.min())
    for key, q in _QUANTILES:
        out[key] = float(np.quantile(x, q))  # linear interpolation, as pandas
    out["max"] = float(x.max())
    return out


def grand_challenge_doc(table: CaseTable) -> dict[str, object]:
    """The ``metrics.json`` document of a grand-challenge evaluation container (see the module docstring)."""
    case = {col: {str(i): json_number(row[col]) for i, row in enumerate(table.rows)} for col in table.columns}
    numeric = [c for c in table.columns if c != "case"]
    return {"case": case, "aggregates": {c: _describe(table.column(c)) for c in numeric}}


def nnunet_doc(table: CaseTable, sources: Mapping[str, tuple[str, str]] | None = None,
               label: str = "1") -> dict[str, object]:
    """The ``summary.json`` document of nnU-Net v2's evaluator (see the module docstring).

    ``sources`` maps a case name to its ``(prediction_file, reference_file)`` paths (default: the name).
    """
    sources = sources or {}
    per_case = []
    for row in table.rows:
        name = str(row["case"])
        pred, ref = sources.get(name, (name, name))
        per_case.append({"metrics": {label: {m: json_number(row[m]) for m in table.metrics}},
                         "prediction_file": str(pred), "reference_file": str(ref)})
    mean = {}
    for m in table.metrics:
        x = table.column(m)
        mean[m] = float(np.nanmean(x)) if (~np.isnan(x)).any() else None
    return {"metric_per_case": per_case, "mean": {label: mean}, "foreground_mean": dict(mean)}


def format_text(name: str, table: CaseTable, sources: Mapping[str, tuple[str, str]] | None = None) -> str:
    """The text of the ``--format name`` file."""
    if name == "grand-challenge":
        doc = grand_challenge_doc(table)
    elif name == "nnunet":
        doc = nnunet_doc(table, sources)
    else:
        raise ValueError(f"unknown format {name!r}; choose from {', '.join(FORMATS)}")
    return json.dumps(doc, indent=2, allow_nan=False) + "\n"
