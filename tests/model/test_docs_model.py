"""The docs' code that needs torch: the ``>>>`` examples of the cimd_model guide and every Python block of
the pages (and the Markdown they include) that imports ``cimd_model`` or ``torch``.

Blocks that load a trained checkpoint (``runs/<name>/checkpoint.pt``) get a stand-in: a tiny model of the
same kind, saved by the real training loop into a temporary folder; ``images`` (the reader's batch in the
prose) is a batch of AmbiBlobs images. Everything else in a block runs as written.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="cimd_model tests need torch (pip install .[model])")

from test_docs import DOCS, TORCH_PAGES, doc_sources, needs_torch, python_blocks, run_doctests  # noqa: E402

TINY = {  # overrides that make a cpu-small config train and sample in about a second on 32x32 images
    "cimd": {"image_size": 32, "base_channels": 8, "channel_mult": [1, 2], "attention_resolutions": [],
             "encoder_mults": [1, 2]},
    "prob_unet": {},
}


@pytest.mark.parametrize("name", sorted(TORCH_PAGES))
def test_torch_page_examples(name: str) -> None:
    torch.set_num_threads(1)
    n, failures = run_doctests(DOCS / name)
    assert not failures, failures
    assert n >= 5, f"{name} has only {n} doctest examples"


def torch_blocks() -> list[tuple[str, int, str]]:
    return [
        (path.name, i, block)
        for path in doc_sources()
        for i, block in enumerate(python_blocks(path))
        if needs_torch(block)
    ]


@pytest.fixture(scope="module")
def stand_in_checkpoints(tmp_path_factory: pytest.TempPathFactory):
    from cimd_model.data import load_dataset
    from cimd_model.registry import build_model, model_configs
    from cimd_model.train import train

    data = load_dataset("ambiblobs-ct", "train", n=2, size=32)
    made: dict[str, Path] = {}

    def checkpoint(model_name: str) -> Path:
        if model_name not in made:
            config = {**model_configs(model_name)["cpu-small"], **TINY.get(model_name, {})}
            model = build_model(model_name, config, data.in_channels)
            out = tmp_path_factory.mktemp(model_name)
            train(model, data, out, steps=1, batch_size=2, progress=False)
            made[model_name] = out / "checkpoint.pt"
        return made[model_name]

    images = torch.stack([data[i]["image"] for i in range(len(data))])
    return checkpoint, images


BLOCKS = torch_blocks()


@pytest.mark.parametrize(("page", "index", "block"), BLOCKS, ids=[f"{p}-{i}" for p, i, _ in BLOCKS])
def test_torch_code_blocks(page: str, index: int, block: str, stand_in_checkpoints) -> None:
    torch.set_num_threads(1)
    checkpoint, images = stand_in_checkpoints

    def stand_in(match: re.Match) -> str:
        return str(checkpoint("cimd" if "cimd" in match.group(1) else "prob_unet"))

    code = re.sub(r"runs/([\w.-]+)/checkpoint\.pt", stand_in, block)
    exec(compile(code, f"<{page} python block {index}>", "exec"), {"images": images})
