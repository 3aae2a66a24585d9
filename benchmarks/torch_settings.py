"""How a torch call is run and timed on a device: threads, memory format and precision, device sync,
and the matrix-product rate a call's FLOPs are compared with (used by :mod:`benchmarks.model_speed`).

On a GPU the precisions are ``fp32`` (TF32 off for matrix products and cuDNN convolutions), ``tf32`` (TF32
on) and ``bf16`` (TF32 on plus ``torch.autocast(dtype=torch.bfloat16)``); the CPU runs float32 only.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from .harness import median_time

PRECISIONS = ("fp32", "tf32", "bf16")
MATMUL_SIZE = {"cpu": 1024, "cuda": 8192}


@dataclass(frozen=True)
class Setting:
    """One way of running a call: torch threads, memory format and (on a GPU) precision."""

    threads: int
    channels_last: bool
    precision: str = "fp32"

    def label(self, device_type: str) -> str:
        parts = [f"{self.threads} thr"] if device_type == "cpu" else [self.precision]
        if self.channels_last:
            parts.append("channels_last")
        return ", ".join(parts)

    def rate_key(self, device_type: str) -> str:
        return f"{self.threads} thr" if device_type == "cpu" else self.precision


def settings_for(device_type: str, threads: list[int]) -> list[Setting]:
    """Every setting tried on ``device_type``: threads × format on a CPU, precision × format on a GPU."""
    if device_type == "cpu":
        return [Setting(t, cl) for t, cl in itertools.product(threads, (False, True))]
    t = threads[-1]
    return [Setting(t, cl, p) for p, cl in itertools.product(PRECISIONS, (False, True))]


@contextlib.contextmanager
def precision_mode(precision: str, device_type: str) -> Iterator[None]:
    """Run the body in ``precision`` (see the module docstring); the CPU runs float32 only."""
    import torch

    if device_type != "cuda":
        if precision != "fp32":
            raise ValueError(f"precision {precision!r} is measured on a GPU only")
        yield
        return
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    tf32 = precision != "fp32"
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = tf32
    try:
        if precision == "bf16":
            with torch.autocast("cuda", dtype=torch.bfloat16):
                yield
        else:
            yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def apply_setting(setting: Setting, model: Any, tensors: tuple[Any, ...]) -> None:
    """Put ``model`` and ``tensors`` (4-d inputs) in the setting's memory format, and torch in its threads."""
    import torch

    torch.set_num_threads(setting.threads)
    fmt = torch.channels_last if setting.channels_last else torch.contiguous_format
    model.to(memory_format=fmt)
    for tensor in tensors:
        tensor.data = tensor.data.contiguous(memory_format=fmt)


def synchronizer(device: Any) -> Callable[[], None]:
    """A call that waits for ``device``'s queued work (a no-op on the CPU), to end each timed call with."""
    import torch

    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


def median_after_warm_up(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``repeats`` calls of ``fn`` after one untimed call."""
    fn()  # warm-up (allocator, oneDNN primitive caches, cuDNN's algorithm search)
    return median_time(fn, repeats)[0]


def matmul_rate(threads: int, device: str = "cpu", precision: str = "fp32") -> float:
    """FLOP/s of ``torch.mm`` on square matrices (``MATMUL_SIZE``) in ``precision`` on ``device``."""
    import torch

    dev = torch.device(device)
    torch.set_num_threads(threads)
    size = MATMUL_SIZE[dev.type]
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    gen = torch.Generator(device=dev).manual_seed(0)
    a = torch.randn(size, size, device=dev, dtype=dtype, generator=gen)
    b = torch.randn(size, size, device=dev, dtype=dtype, generator=gen)
    sync = synchronizer(dev)
    with precision_mode("tf32" if precision == "bf16" else precision, dev.type):
        seconds = median_after_warm_up(lambda: (torch.mm(a, b), sync()), 10 if dev.type == "cuda" else 5)
    return 2 * size**3 / seconds
