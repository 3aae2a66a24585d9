"""What ``python -m mutation`` mutates, the tests that guard each module, and the operators it leaves out."""

from __future__ import annotations

_RATER_TESTS = [
    "tests/test_raters.py", "tests/test_raters_integration.py", "tests/test_weighted.py",
    "tests/test_options.py",
]

#: module (under ambiseg_metrics/) -> the tests that guard it (fast, no torch)
SCOPE: dict[str, list[str]] = {
    "core/_kernels.py": [
        "tests/test_kernels.py",
        "tests/test_kernel_chunks.py",
        "tests/test_kernel_words.py",
        "tests/test_count_paths.py",
        "tests/test_votes.py",
        "tests/test_gram_blocks.py",
        "tests/test_small_path.py",
        "tests/test_readout_kernels.py",
        "tests/test_raters.py",
        "tests/test_reference_equality.py",
        "tests/test_inputs.py",
        "tests/test_cache_setting.py",
    ],
    "core/counts.py": [
        "tests/test_count_paths.py",
        "tests/test_kernel_load.py",
        "tests/test_inputs.py",
        "tests/test_input_errors.py",
        "tests/test_small_path.py",
        "tests/test_kernels.py",
        "tests/test_gram_blocks.py",
        "tests/test_votes.py",
        "tests/test_raters.py",
        "tests/test_reference_equality.py",
        "tests/test_properties.py",
        "tests/test_weighted.py",
    ],
    "core/numpy_counts.py": [
        "tests/test_small_path.py",
        "tests/test_kernel_load.py",
        "tests/test_count_paths.py",
        "tests/test_inputs.py",
        "tests/test_input_errors.py",
        "tests/test_reference_equality.py",
    ],
    "core/pairwise.py": [
        "tests/test_pairwise.py",
        "tests/test_kernel_load.py",
        "tests/test_count_paths.py",
        "tests/test_reference_equality.py",
        "tests/test_properties.py",
        "tests/test_worked_examples.py",
        "tests/test_small_path.py",
    ],
    "metrics/ged.py": [
        "tests/test_ged_api.py",
        "tests/test_worked_examples.py",
        "tests/test_conventions.py",
        "tests/test_reference_equality.py",
        "tests/test_properties.py",
        "tests/test_weighted.py",
        "tests/test_options.py",
    ],
    "metrics/ged_readouts.py": [
        "tests/test_ged_api.py",
        "tests/test_worked_examples.py",
        "tests/test_conventions.py",
        "tests/test_reference_equality.py",
        "tests/test_properties.py",
        "tests/test_weighted.py",
    ],
    "metrics/collective_insight.py": [
        "tests/test_worked_examples.py",
        "tests/test_conventions.py",
        "tests/test_reference_equality.py",
        "tests/test_properties.py",
        "tests/test_weighted.py",
        "tests/test_options.py",
    ],
    "metrics/ci_counts.py": [
        "tests/test_worked_examples.py",
        "tests/test_conventions.py",
        "tests/test_reference_equality.py",
        "tests/test_properties.py",
    ],
    "metrics/matching.py": [
        "tests/test_matching_paths.py",
        "tests/test_kernel_load.py",
        "tests/test_matching.py",
        "tests/test_reference_equality.py",
        "tests/test_properties.py",
        "tests/test_weighted.py",
    ],
    "core/_assign.py": [
        "tests/test_matching.py",
        "tests/test_readout_kernels.py",
        "tests/test_small_path.py",
        "tests/test_weighted.py",
        "tests/test_multiclass.py",
        "tests/test_kernel_cache_deps.py",  # slow (compiles a copy of the package twice): last
    ],
    "core/weights.py": [
        "tests/test_weight_rules.py",
        "tests/test_weighted.py",
        "tests/test_raters.py",
        "tests/test_inputs.py",
    ],
    "core/_kernel_load.py": ["tests/test_kernel_load.py", "tests/test_small_path.py"],
    "files/report.py": ["tests/test_report.py", "tests/test_summary.py"],
    "summary.py": ["tests/test_summary.py", "tests/test_report.py", "tests/test_accumulate.py"],
    # the rater-vote family: the compiled readouts, their numpy table path, the per-pixel path and the API
    "core/_rater_kernel.py": [*_RATER_TESTS],
    "metrics/rater_readouts.py": [*_RATER_TESTS],
    "metrics/rater_tables.py": [*_RATER_TESTS],
    "metrics/rater_family.py": [*_RATER_TESTS],
    "metrics/raters.py": [*_RATER_TESTS],
    "metrics/ncc.py": ["tests/test_ncc.py", "tests/test_presets.py", "tests/test_input_errors.py",
                       "tests/test_byte_order.py", "tests/test_options.py"],
    # the compiled reading of 8-bit grey PNGs (a wrong pixel is a wrong number too)
    "core/_png_kernel.py": ["tests/test_png_plain.py"],
    "files/png_plain.py": ["tests/test_png_plain.py", "tests/test_image_reader.py"],
    "metrics/multiclass.py": [
        "tests/test_multiclass.py", "tests/test_conventions.py", "tests/test_options.py",
        "tests/test_weighted.py", "tests/test_presets.py", "tests/test_input_errors.py",
    ],
}
# a mutated annotation (``str | None`` -> ``str - None``) is only noticed when something evaluates it
for _module, _tests in SCOPE.items():
    _dotted = "ambiseg_metrics." + _module.removesuffix(".py").replace("/", ".")
    _tests[:0] = [f"tests/test_annotations.py::test_{kind}annotations_resolve[{_dotted}]"
                  for kind in ("", "variable_")]

#: operators left out everywhere, with the reason (each would only add run time, not information)
EXCLUDED_OPERATORS = [
    # removing @njit gives the same numbers in pure Python, hours slower (a time-out, not a test result)
    "core/RemoveDecorator",
    # cosmic-ray's variable operators insert/replace names at random: mostly NameErrors at import
    "core/Variable(Inserter|Replacer)",
    # arithmetic replaced by exotic operators (**, <<, >>, %, //, @): the plain ones (+ - * / & | ^) are kept
    r"core/ReplaceBinaryOperator_\w+_(Pow|LShift|RShift|Mod|FloorDiv|MatMult)$",
    # identity and membership tests swapped with comparisons: type errors or interned-string equivalents
    r"core/ReplaceComparisonOperator_\w+_(Is|IsNot|In|NotIn)$",
    r"core/ReplaceComparisonOperator_(Is|IsNot|In|NotIn)_\w+$",
]
