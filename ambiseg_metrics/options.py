"""Every evaluation option, declared once: name, allowed values, default and a one-line doc.

:data:`OPTIONS` is the table. From it come

* the fields of :class:`Conventions` (also called :data:`Options`): the frozen object that holds one value
  of every option — a preset of :data:`ambiseg_metrics.PRESETS`, or what the resolver
  (:func:`ambiseg_metrics.conventions.resolve_options`) makes of a preset and the arguments given on top;
* the checks every value goes through (:func:`check_option`), before any pixel is read;
* the "not passed" markers of the function signatures (:data:`DEFAULT`), so that a default value is
  written only in the table, and an argument passed explicitly — even a falsy one such as
  ``threshold=0.0`` or ``include_background=False`` — is told apart from one left out;
* the options :func:`ambiseg_metrics.evaluate`, the accumulators and ``ambiseg-eval`` take
  (:func:`evaluate_options`; the command-line flags are ``--<name>`` with ``-`` for ``_``), and the text
  that documents them (:func:`options_doc`).

Adding an option is one :class:`Option` entry here (and the code that uses its value).
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

import numpy as np

from .core._validate import check_bool, check_choice, check_threshold

__all__ = [
    "CONVENTIONS_DOC",
    "DEFAULT",
    "OPTIONS",
    "Conventions",
    "Default",
    "Option",
    "Options",
    "check_option",
    "choices",
    "evaluate_options",
    "given",
    "option",
    "options_doc",
    "value_of",
]


_CLASSES_TYPE = "classes must be None, a number of classes or a sequence of class ids"


def _check_classes(value: object) -> int | tuple[int, ...] | None:
    """None, a number of classes C >= 1, or a non-empty sequence of class ids (stored as a tuple)."""
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{_CLASSES_TYPE}; got {value!r}")
    if isinstance(value, (numbers.Integral, np.integer)):
        if value < 1:
            raise ValueError(f"classes must be >= 1 when given as a number of classes; got {value}")
        return int(value)
    if isinstance(value, (str, bytes)) or not isinstance(value, (Sequence, np.ndarray)):
        raise TypeError(f"{_CLASSES_TYPE}; got {value!r}")
    ids = []
    for c in value:
        if isinstance(c, (bool, np.bool_)) or not isinstance(c, (numbers.Integral, np.integer)):
            raise TypeError(f"classes must hold integer class ids; got {c!r}")
        ids.append(int(c))
    if not ids:
        raise ValueError("classes is empty: give at least one class id")
    return tuple(ids)


@dataclass(frozen=True)
class Option:
    """One evaluation option.

    Attributes
    ----------
    name : str
        The keyword argument (and :class:`Conventions` field; CLI flag ``--name`` with ``-`` for ``_``).
    default : object
        The value when neither a preset nor the caller sets it.
    doc : str
        One line for people: what the option chooses.
    choices : tuple or None
        The allowed values, when they are a fixed list.
    check : callable or None
        ``check(value) -> normalised value`` for options without ``choices``; raises TypeError/ValueError.
    type : str
        The type as written in the documentation.
    evaluate : bool
        Taken by :func:`~ambiseg_metrics.evaluate`, the accumulators and ``ambiseg-eval``.
    """

    name: str
    default: object
    doc: str
    choices: tuple[object, ...] | None = None
    check: Callable[[object], object] | None = None
    type: str = "str"
    evaluate: bool = True

    def validate(self, value: object) -> object:
        """``value`` checked (and normalised, e.g. a threshold as float); raises TypeError/ValueError."""
        if self.choices is not None:
            return check_choice(self.name, value, self.choices)  # type: ignore[arg-type]
        if self.check is not None:
            return self.check(value)
        return value

    @property
    def doc_type(self) -> str:
        """The numpydoc type line: ``{"a", "b"}, default "a"`` or ``float, default 0.5``."""
        kind = "{" + ", ".join(f'"{c}"' for c in self.choices) + "}" if self.choices else self.type
        default = f'"{self.default}"' if isinstance(self.default, str) else repr(self.default)
        return f"{kind}, default {default}"


_EMPTY = ("one", "zero", "skip")

#: The table: every evaluation option, in the order of the :class:`Conventions` fields.
OPTIONS: tuple[Option, ...] = (
    Option("empty_pair", "one", "IoU/Dice of two empty masks in the GED and HM-IoU: 1, 0, or the pair left "
           "out of its mean (\"skip\"; a matching then counts it as 1)", _EMPTY),
    Option("estimator", "v-statistic", "GED within-set terms over all N², M² ordered pairs, self-pairs "
           "included (\"v-statistic\"), or over the N(N-1), M(M-1) pairs of distinct masks (\"unbiased\", "
           "needs N, M >= 2)", ("v-statistic", "unbiased")),
    Option("distance", "iou", "GED distance d = 1 - IoU or d = 1 - Dice", ("iou", "dice")),
    Option("ci_form", "paper", "what the ci metric reports: the published 3·S·D·A/(S+D+A) (\"paper\") or "
           "the true harmonic mean (\"harmonic\")", ("paper", "harmonic")),
    Option("variance", "dice", "pairwise variance V(A, B) in the diversity agreement D_a: 1 - Dice or the "
           "pixel variance of A - B", ("dice", "pixel")),
    Option("threshold", 0.5, "foreground threshold for float (probability) masks, foreground is > threshold, "
           "in [0, 1)", check=check_threshold, type="float"),
    Option("class_absent", "one", "multi-class: IoU of a class absent from both label maps: 1, 0, or the "
           "class left out of the class mean (\"skip\")", _EMPTY, evaluate=False),
    Option("include_background", False, "multi-class: whether class 0 enters the class mean",
           check=lambda v: check_bool("include_background", v), type="bool", evaluate=False),
    Option("similarity", "iou", "HM-IoU and similarity matrices: match on IoU or on Dice", ("iou", "dice"),
           evaluate=False),
    Option("classes", None, "multi-class: the evaluated classes: a number of classes C (0..C-1), a sequence "
           "of class ids, or None (every class up to the largest label present)", check=_check_classes,
           type="int, sequence of int or None", evaluate=False),
    Option("pair_average", "mean", "GED terms as the mean of the per-pair distances (\"mean\") or as one "
           "ratio of the pairs' pooled counts (\"pooled\", the torchmetrics Dice that ValUES uses)",
           ("mean", "pooled")),
    Option("calibration_classes", "foreground", "rater calibration (ECE/MCE/ACE) of the foreground only, "
           "or averaged with the background class (\"both\", the class-wise ECE of the SSN evaluation)",
           ("foreground", "both"), evaluate=False),
    Option("requires_classes", False, "multi-class functions refuse classes=None (the preset's code averages "
           "over fixed classes, which the classes present in an image do not reproduce)",
           check=lambda v: check_bool("requires_classes", v), type="bool", evaluate=False),
)

_BY_NAME: dict[str, Option] = {o.name: o for o in OPTIONS}


def option(name: str) -> Option:
    """The :class:`Option` called ``name``; TypeError naming the known options otherwise."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise TypeError(f"unknown option {name!r}; the options are {', '.join(_BY_NAME)}") from None


def choices(name: str) -> tuple[object, ...]:
    """The allowed values of option ``name``."""
    found = option(name).choices
    assert found is not None, f"option {name} has no fixed list of values"
    return found


def check_option(name: str, value: object) -> object:
    """``value`` checked against option ``name`` (and normalised); TypeError/ValueError naming the option."""
    return option(name).validate(value)


def evaluate_options() -> tuple[str, ...]:
    """Names of the options taken by :func:`~ambiseg_metrics.evaluate`, the accumulators and the CLI."""
    return tuple(o.name for o in OPTIONS if o.evaluate)


# ------------------------------------------------------------------------------------ not-passed markers
class Default:
    """Marks an option argument that was not passed (the preset's value, else the table's default applies).

    Its ``repr`` is the table's default, so signatures read ``threshold=0.5``.
    """

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return repr(_BY_NAME[self.name].default)

    def __reduce__(self):
        return (Default, (self.name,))


class _Defaults:
    """``DEFAULT.<option>``: the not-passed marker of every option (for signatures)."""

    def __init__(self) -> None:
        for o in OPTIONS:
            setattr(self, o.name, Default(o.name))

    def __getattr__(self, name: str) -> Any:  # only reached for unknown names
        raise AttributeError(f"no option {name!r}")


#: ``DEFAULT.threshold`` etc.: the default of a keyword argument that is an option.
DEFAULT: Any = _Defaults()


def value_of(name: str, value: object) -> object:
    """``value`` checked for option ``name``, or the table's default when it is the not-passed marker.

    For functions that take an option but no preset (e.g. :func:`~ambiseg_metrics.pair_counts`).
    """
    return option(name).default if isinstance(value, Default) else check_option(name, value)


def given(values: dict[str, object]) -> dict[str, object]:
    """The entries of ``values`` that were passed (not a :class:`Default` marker)."""
    return {k: v for k, v in values.items() if not isinstance(v, Default)}


# ------------------------------------------------------------------------------------ the frozen options
def _with_option_fields(cls: type) -> type:
    """Insert one field per :data:`OPTIONS` entry after ``name`` (before the dataclass is made)."""
    own = dict(cls.__dict__.get("__annotations__", {}))
    annotations = {"name": own.pop("name")}
    for o in OPTIONS:
        annotations[o.name] = "object"
        setattr(cls, o.name, o.default)
    annotations.update(own)
    cls.__annotations__ = annotations
    return cls


@dataclass(frozen=True)
@_with_option_fields
class Conventions:
    """The value of every evaluation option, with where it comes from (a preset of published code).

    A preset in :data:`~ambiseg_metrics.PRESETS` is one of these; so is what
    :func:`~ambiseg_metrics.conventions.resolve_options` returns for a preset with arguments on top
    (named ``"<preset>+custom"`` when an argument changed something). Every value is checked on creation.

    Attributes
    ----------
    name : str
        Preset name (or ``"custom"``).
    <option> : object
        One attribute per entry of :data:`ambiseg_metrics.options.OPTIONS`, in its order, with the
        table's default (see :doc:`conventions` for what each chooses).
    source : str
        Paper, repository and file the preset was read from.
    notes : str
        Differences between this preset and the published code, if any.
    """

    name: str = "custom"
    source: str = ""
    notes: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        for o in OPTIONS:
            object.__setattr__(self, o.name, o.validate(getattr(self, o.name)))

    def with_options(self, **changes: object) -> Conventions:
        """A copy with some choices changed (named ``"<name>+custom"``)."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise TypeError(f"unknown convention option(s) {unknown}; choose from {sorted(known)}")
        name = changes.pop("name", f"{self.name}+custom")
        return replace(self, name=name, **changes)

    def values(self) -> dict[str, object]:
        """``{option name: value}`` for every option."""
        return {o.name: getattr(self, o.name) for o in OPTIONS}


#: The resolved options of a call: the same frozen class as a preset.
Options = Conventions


# ------------------------------------------------------------------------------------ documentation
#: numpydoc text of the ``conventions`` parameter, for :func:`~ambiseg_metrics.core.docfill.fill_doc`.
CONVENTIONS_DOC = """conventions : str or Conventions, optional
    A preset name of :data:`~ambiseg_metrics.PRESETS` or a :class:`~ambiseg_metrics.Conventions`: the
    value of every option not passed here (default: the library defaults, preset ``cimd``). An option
    passed explicitly always wins over the preset, whatever its value (``threshold=0.0`` included)."""


def options_doc(names: Iterable[str] | None = None, indent: str = "    ") -> str:
    """numpydoc ``Parameters`` entries of the options ``names`` (default: :func:`evaluate_options`)."""
    chosen = evaluate_options() if names is None else tuple(names)
    lines = []
    for name in chosen:
        o = option(name)
        lines.append(f"{name} : {o.doc_type}")
        lines.append(f"{indent}{o.doc[0].upper()}{o.doc[1:]}.")
    return "\n".join(lines)
