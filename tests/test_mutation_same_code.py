"""The compiled-code check of equivalent kernel mutants (:mod:`mutation.same_code`, ``code_dump``)."""

from __future__ import annotations

import sys
import types

import pytest

numba = pytest.importorskip("numba")

from mutation import code_dump  # noqa: E402
from mutation.same_code import _apply, compare, holds  # noqa: E402

IR = "define i64 @f(i64 %x) {\n  ret i64 %x\n}\n@_ZN08NumbaEnv_array_expr_0x7f1584fac350 = global ptr null\n"


def _dump(ir: str | None, asm: str | None = "asm") -> dict[str, str | None]:
    return {"ir": ir, "asm": None if ir is None else asm}


def test_apply_replaces_the_named_occurrence_with_its_indentation(tmp_path):
    src = tmp_path / "m.py"
    src.write_text("def a():\n    x = f(1)\n\n\ndef b():\n        x = f(1)\n")
    original = _apply(src, "x = f(1)", "x = f( 2)", occurrence=2)
    assert original == "def a():\n    x = f(1)\n\n\ndef b():\n        x = f(1)\n"
    assert src.read_text() == "def a():\n    x = f(1)\n\n\ndef b():\n        x = f( 2)\n"
    src.write_text(original)
    with pytest.raises(ValueError, match="2 lines read 'x = f\\(1\\)'"):
        _apply(src, "x = f(1)", "x = f(2)")
    with pytest.raises(ValueError, match="occurrence"):
        _apply(src, "x = f(1)", "x = f(2)", occurrence=3)
    with pytest.raises(ValueError, match="0 lines"):
        _apply(src, "y = 1", "y = 2")
    assert src.read_text() == original


def test_compare_sets_object_addresses_aside_but_nothing_else():
    same = compare({"k": _dump(IR)}, {"k": _dump(IR.replace("0x7f1584fac350", "0x7fb25afe2250"))})
    assert same["same_ir"] == ["k"] and holds("ir", same)
    changed = compare({"k": _dump(IR)}, {"k": _dump(IR.replace("ret i64 %x", "ret i64 0"), "asm 2")})
    assert changed["different"] == ["k"] and not holds("ir", changed) and not holds("asm", changed)
    asm_only = compare({"k": _dump(IR)}, {"k": _dump(IR + "; align 2")})  # the same machine code
    assert asm_only["same_asm_only"] == ["k"]
    assert holds("asm", asm_only) and not holds("ir", asm_only)


def test_a_missing_kernel_or_one_without_code_disproves_the_claim():
    missing = compare({"k": _dump(IR), "j": _dump(IR)}, {"k": _dump(IR)})
    assert missing["missing"] == ["j"] and not holds("ir", missing)
    cached = compare({"k": _dump(IR)}, {"k": _dump(None)})
    assert cached["no_code"] == ["k"] and not holds("asm", cached)
    assert not holds("ir", compare({}, {}))  # nothing compiled proves nothing


def test_the_dump_holds_each_compiled_signature_and_no_code_for_cached_kernels(monkeypatch):
    mod = types.ModuleType("ambiseg_metrics._dump_probe")
    exec("from numba import njit\n@njit\ndef twice(x):\n    return 2 * x\n", mod.__dict__)
    monkeypatch.setitem(sys.modules, mod.__name__, mod)
    assert mod.twice(3) == 6 and mod.twice(1.5) == 3.0
    dump = {k: v for k, v in code_dump._kernels().items() if k.startswith(mod.__name__)}
    assert sorted(dump) == ["ambiseg_metrics._dump_probe.twice('float64',)",
                            "ambiseg_metrics._dump_probe.twice('int64',)"]
    assert all("define" in v["ir"] and v["asm"] for v in dump.values())
    lib = next(iter(mod.twice.overloads.values())).library
    monkeypatch.setattr(lib, "_disable_inspection", True, raising=False)
    assert None in [v["ir"] for k, v in code_dump._kernels().items() if k.startswith(mod.__name__)]
