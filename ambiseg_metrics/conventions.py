"""Named evaluation conventions: reproduce the numbers of a published evaluation code by name.

Papers on ambiguous segmentation report "the GED" or "the HM-IoU", but each evaluation script makes its
own small choices: what the IoU of two empty masks is, whether a mask is compared with itself in the
within-set terms of the GED, IoU or Dice distance, which CI form, how a class absent from both label maps
enters a multi-class average. :class:`Conventions` collects these choices in one frozen object and
:data:`PRESETS` holds the ones read from published code, so that

>>> from ambiseg_metrics import evaluate, get_convention
>>> import numpy as np
>>> masks = np.zeros((2, 4, 4), bool); masks[0, :2] = True
>>> evaluate(masks, masks[:1], metrics=["ged"])["ged"]                    # IoU(∅, ∅) = 1: 2·0.5 - 0.5 - 0
0.5
>>> evaluate(masks, masks[:1], metrics=["ged"], conventions="mbh")["ged"]  # IoU(∅, ∅) = 0: 2·0.5 - 0.75 - 0
0.25

Every preset was read from the source it names (repository and file, see each preset's ``source``);
where the published code has behaviour this library does not reproduce, ``notes`` says so.
"""

from __future__ import annotations

from .options import Conventions, Options, check_option, choices, given, option

__all__ = [
    "CI_FORMS",
    "EMPTY_PAIRS",
    "Conventions",
    "Options",
    "PRESETS",
    "get_convention",
    "resolve_conventions",
    "resolve_options",
]

#: How a pair of masks that are both empty (or a class absent from both label maps) is scored:
#: ``"one"``: IoU = Dice = 1 (perfect agreement, d = 0); ``"zero"``: IoU = 0 (d = 1); ``"skip"``: the pair
#: (class) is left out of the average it would enter.
EMPTY_PAIRS = choices("empty_pair")
#: ``"paper"``: CI = 3 S D A / (S + D + A) as published; ``"harmonic"``: 3 / (1/S + 1/D + 1/A).
CI_FORMS = choices("ci_form")


PRESETS: dict[str, Conventions] = {
    "cimd": Conventions(
        name="cimd",
        source="Rahman et al., CVPR 2023 (CIMD), github.com/aimansnigdha/"
        "Ambiguous-Medical-Image-Segmentation-using-Diffusion-Models "
        "scripts/.ipynb_checkpoints/segmentation_sampleqaun-checkpoint.py "
        "(generalized_energy_distance_iou, iou_score_cal); CI as defined in the paper",
        notes="The library default. The script's IoU is (|A∩B| + 1e-5)/(|A∪B| + 1e-5), so IoU(∅, ∅) = 1 "
        "(exact ratio here), all N², M² pairs, d = 1 - IoU. The public repository has no CI code: the CI "
        "paper form 3SDA/(S+D+A) and D_a with V = 1 - Dice are this library's reading of the paper. "
        "(That script also returns the GED and the IoU in swapped variables before printing them.)",
    ),
    "phiseg": Conventions(
        name="phiseg",
        requires_classes=True,
        source="Baumgartner et al., MICCAI 2019 (PHiSeg), github.com/baumgach/PHiSeg-code utils.py "
        "(generalised_energy_distance, variance_ncc_dist) and phiseg_test_quantitative.py",
        notes="Per-label IoU is 1 when the label is absent from both maps, averaged over the foreground "
        "labels 1..nlabels-1 (label_range=range(1, nlabels)); all N², M² pairs (V-statistic). NCC: "
        "ε = 1e-8 inside the log, population std. Multi-class functions need classes= under this preset: "
        "with classes=None the classes absent from an image would be dropped instead of scoring 1 (a "
        "documented example gives 0.606 where the code gives 0.404).",
    ),
    "kohl": Conventions(
        name="kohl",
        empty_pair="skip",
        class_absent="skip",
        source="Kohl et al., NeurIPS 2018 (Probabilistic U-Net), github.com/SimonKohl/probabilistic_unet "
        "evaluation/eval_cityscapes.py (get_energy_distance_components, calc_energy_distances) and "
        "utils/training_utils.py (metrics_from_conf_matrix)",
        notes="A class absent from both maps has IoU NaN and is dropped by a nanmean over the evaluated "
        "classes (their Cityscapes setting evaluates the 10 switchable classes: pass them as classes=). "
        "The published script is multi-class only; for binary masks this preset drops both-empty pairs "
        "from every GED term (their d_YS/d_SS use np.mean and would turn NaN instead). Reproduced: "
        "ignore_label=255 (their ignore_mask from the annotation, applied to every pair) and "
        "probability_weighted=True (pass the mode probabilities as gt_weights= to multiclass_ged); the "
        "d matrices are float32 there (differences up to ~3e-7 from the float64 values here).",
    ),
    "mose": Conventions(
        name="mose",
        class_absent="skip",
        source="Gao et al., ICLR 2023 (MoSE), github.com/gaozhitong/MoSE-AUSeg utils/metrics.py "
        "(iou_dist, cal_metrics_batch)",
        notes="IoU is (|A∩B| + ε)/(|A∪B| + ε) with ε = 1e-8, so two empty masks give 1; this library "
        "uses the exact ratio (the ε moves an IoU by less than ε/|A∪B|; the code's float32 arithmetic moves "
        "the GED by up to ~1e-7, benchmarks/float32_ged.py). Multi-class (Cityscapes): a class with "
        "|A| + |B| = 0 is NaN and dropped by a nanmean. GED with uniform weights over all pairs "
        "(V-statistic). HM-IoU: Hungarian matching after repeating the annotations when M divides N, "
        "optimal transport with uniform weights otherwise; both equal the lcm duplication used here.",
    ),
    "ccdm": Conventions(
        name="ccdm",
        requires_classes=True,
        source="Zbinden et al., ICCV 2023 (CCDM), github.com/LarsDoorenbos/ccdm-stochastic-segmentation "
        "evaluation/evaluate_lidc_uncertainty.py (iou, batched_distance, "
        "calc_batched_generalised_energy_distance, batched_hungarian_matching)",
        notes="Per-class IoU with NaN (0/0) set to 1, averaged over the classes except background "
        "(per_class_iou[..., 1:]); V-statistic GED; HM-IoU after repeat_interleave to lcm(N, M) and "
        "scipy linear_sum_assignment, as here. Multi-class functions need classes= under this preset "
        "(the code averages over the fixed classes 1..L-1, absent classes scoring 1; classes=None would "
        "drop them).",
    ),
    "mbh": Conventions(
        name="mbh",
        empty_pair="zero",
        class_absent="zero",
        source="MBH-Seg 2025 challenge evaluation, github.com/mbhseg/metrics-mbhseg2025 metrics_set.py "
        "(iou, distance, generalized_energy_distance, dice_at_thresh, dice_at_all)",
        notes="IoU is |A∩B| / (|A∪B| + 1e-8), so two empty masks (also a mask with itself) give IoU 0, "
        "d = 1; foreground classes averaged (background excluded); V-statistic. Not reproduced: their "
        "image-level shortcut that returns GED = 0 when every annotation and prediction is background "
        "(here that case also gives 2·1 - 1 - 1 = 0) and GED = 1.0 when only one side is all "
        "background (here 1 - E[d(S,S')] or 1 - E[d(Y,Y')]). Their Dice uses (2|A∩B| + ε)/(|A|+|B| + ε), "
        "so Dice(∅, ∅) = 1 as here; Dice_soft = dice_soft() with thresholds 0.1, 0.3, 0.5, 0.7, 0.9.",
    ),
    "qubiq": Conventions(
        name="qubiq",
        source="QUBIQ challenge (MICCAI 2020/2021), qubiq.grand-challenge.org and Li et al., "
        "arXiv:2405.18435 (score: Dice of the predicted and the rater frequency maps binarised at "
        "0.1, 0.2, ..., 0.9, "
        "averaged over the levels)",
        notes="qubiq_score with thresholds 0.1..0.9 and the strict comparison (> τ); Dice(∅, ∅) = 1. The "
        "official scoring script was not found in the public code index, so the strict comparison and the "
        "empty-map value follow the challenge description and the teams' public re-implementations; "
        "qubiq_score(comparison='>=') gives the inclusive variant. The GED options are the defaults.",
    ),
    "ssn": Conventions(
        name="ssn",
        calibration_classes="both",
        requires_classes=True,
        source="Monteiro et al., NeurIPS 2020 (Stochastic Segmentation Networks), the SSN fork of PHiSeg's "
        "evaluation, github.com/MiguelMonteiro/PHiSeg-code phiseg_full_evaluation.py "
        "(calc_class_wise_expected_calibration_error, test(num_samples=100)) and utils.py",
        notes="PHiSeg's GED (fixed foreground classes, V-statistic) on 100 samples per image; ECE with 10 "
        "equal-width bins (np.linspace edges, last bin closed) of the mean sample probability against the "
        "mean rater frequency, computed for class 0 and class 1 and averaged (calibration_classes='both'). "
        "The number of samples is the caller's (pass 100).",
    ),
    "values": Conventions(
        name="values",
        distance="dice",
        empty_pair="zero",
        pair_average="pooled",
        source="Kahl et al., ICLR 2024 (ValUES), github.com/IML-DKFZ/values uncertainty_modeling/test_3D.py "
        "(calculate_ged) with torchmetrics==0.11.4 (its requirements.txt) functional dice",
        notes="d = 1 - Dice with torchmetrics' micro average over the stacked pairs: each GED term is one "
        "ratio 1 - 2ΣI/Σ(|A|+|B|) over all N·M (N², M²) pairs, not a mean of per-pair distances; "
        "zero_division=0, so a term whose pairs are all empty has d = 1; ignore_index=0 (background). "
        "Predictions are argmax'ed (p > 0.5 for two classes, a tie goes to background). Worked example "
        "(tests/test_presets.py): 37/84; torchmetrics 0.11.4 gives 0.44047612 (float32). An earlier "
        "version of that file averaged per-pair distances (pair_average='mean').",
    ),
}


def get_convention(name: str | Conventions) -> Conventions:
    """Return the preset called ``name`` (a :class:`Conventions` is returned unchanged).

    Raises
    ------
    ValueError
        If ``name`` is not a preset; the message lists them.
    """
    if isinstance(name, Conventions):
        return name
    if not isinstance(name, str):
        raise TypeError(
            f"conventions must be a preset name or a Conventions object; got {type(name).__name__}"
        )
    key = name.strip().lower()
    if key not in PRESETS:
        raise ValueError(f"unknown conventions {name!r}; choose one of {', '.join(map(repr, PRESETS))}")
    return PRESETS[key]


def resolve_options(
    conventions: str | Conventions | None = None,
    *,
    accepted: tuple[str, ...] | None = None,
    caller: str = "this function",
    **explicit: object,
) -> Options:
    """The single resolver: a preset (or the defaults) with the explicitly passed options on top.

    Parameters
    ----------
    conventions : str, Conventions or None
        A preset name of :data:`PRESETS`, a :class:`Conventions` (e.g. an already resolved one), or None
        for the library defaults (preset ``cimd``).
    accepted : tuple of str, optional
        The option names the caller takes; any other name in ``explicit`` is a TypeError.
    caller : str
        Named in that TypeError.
    **explicit
        Option values passed by the caller. A :class:`~ambiseg_metrics.options.Default` marker means "not
        passed"; every other value — ``0.0``, ``False`` and ``None`` included — is explicit and wins over
        the preset.

    Returns
    -------
    Options
        Every option's value, each checked; the preset itself when nothing changes it, else a copy named
        ``"<preset>+custom"``.

    Raises
    ------
    TypeError, ValueError
        Unknown preset or option, or a value the option does not allow. Nothing has read a pixel yet.
    """
    base = PRESETS["cimd"] if conventions is None else get_convention(conventions)
    passed = given(explicit)
    for name in passed:
        option(name)  # TypeError for a name that is no option at all
        if accepted is not None and name not in accepted:
            raise TypeError(f"{caller} takes no option {name!r}; its options are {', '.join(accepted)}")
    changes = {k: check_option(k, v) for k, v in passed.items()}
    if all(getattr(base, k) == v and type(getattr(base, k)) is type(v) for k, v in changes.items()):
        return base
    return base.with_options(**changes)


def resolve_conventions(conventions: str | Conventions | None, **explicit: object) -> Conventions:
    """Like :func:`resolve_options`, for callers that mark "not passed" with ``None`` (e.g. the CLI).

    Only ``None`` means "not passed" here: a falsy value such as ``threshold=0.0`` is explicit and wins.
    """
    return resolve_options(conventions, **{k: v for k, v in explicit.items() if v is not None})
