"""Stage 0: add the ten action tags to a base checkpoint's tokenizer, one token each, and settle its chat format."""

from __future__ import annotations

import json
from pathlib import Path

from .chat import resolve_format, settle_chat_template, write_format
from .tags import TAGS, tag_ids


def extend_vocab(base: Path, out_dir: Path, special: bool, init: str, chat: dict | None = None) -> dict:
    """Load `base`, add the tags, resize the embeddings if needed, save an HF directory with `tags.json` and
    `chat_format.json` (ms-swift model type and template: `chat` holds the config's `model_type` / `template` /
    `hub_id`, null entries detected), its chat template agreeing with ms-swift's (`darecipe.chat`).

    `special=False` registers the tags as ordinary added tokens (how Qwen registers <think>), so
    `decode(skip_special_tokens=True)` keeps them; `special=True` is what the public release did.
    `init="mean"` sets each new tag's input and output embedding to the mean of the existing ones,
    the usual start for untrained rows; `init="spelled"` to the mean of the rows of the pieces the tag's text
    splits into with the base tokenizer (`<Code>` starts where `<`, `Code`, `>` are, so a pretrained model can
    emit it from the first step); "keep" leaves what the checkpoint has there.
    """
    import torch
    from tokenizers import AddedToken
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base, torch_dtype="auto")
    n_before = len(tok)
    pieces = {t: tok.encode(t, add_special_tokens=False) for t in TAGS}
    new = [AddedToken(t, special=special, normalized=False, single_word=False) for t in TAGS]
    if special:
        added = tok.add_special_tokens({"additional_special_tokens": new}, replace_extra_special_tokens=False)
    else:
        added = tok.add_tokens(new)
    emb = model.get_input_embeddings()
    resized = len(tok) > emb.weight.shape[0]
    if resized:
        model.resize_token_embeddings(len(tok), pad_to_multiple_of=128)
    ids = tag_ids(tok)
    if init in ("mean", "spelled"):
        inp = model.get_input_embeddings().weight
        out = model.get_output_embeddings()
        tables = [inp] + ([out.weight] if out is not None and out.weight.data_ptr() != inp.data_ptr() else [])
        with torch.no_grad():
            for table in tables:
                for tag, row in ids.items():
                    src = pieces[tag] if init == "spelled" else slice(0, n_before)
                    table[row] = table[src].mean(dim=0).to(table.dtype)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tok.save_pretrained(out_dir)
    (out_dir / "tags.json").write_text(json.dumps(ids, indent=2) + "\n")
    fmt = resolve_format(chat or {}, base)
    which = settle_chat_template(out_dir, fmt)
    write_format(out_dir, fmt, chat_template=which)
    return {
        "model_type": fmt.model_type,
        "template": fmt.template,
        "chat_template": which,
        "tokenizer_len_before": n_before,
        "tokenizer_len_after": len(tok),
        "added": added,
        "special": special,
        "embeddings_resized": resized,
        "vocab_size": model.get_input_embeddings().weight.shape[0],
        "tag_ids": ids,
        "init": init,
        "pieces": pieces if init == "spelled" else None,
    }
