"""Acceptance: labels are -100 on every token of each <Execute>…</Execute> span and on no other assistant token,
encoded by ms-swift's own template with the arguments the pipeline passes to `swift sft` for stage 2."""

import json
from pathlib import Path

import yaml
from conftest import REPO
from swift.arguments import SftArguments
from swift.utils import parse_args

from darecipe.chat import read_format
from darecipe.config import load_schema, validate_config
from darecipe.swift_args import sft_args

RESPONSE = (
    "<Analyze>Load the table.</Analyze><Code>```python\nprint(6*7)\n```</Code>"
    "<Execute>\n42\n</Execute><Analyze>Now the mean.</Analyze><Code>```python\nprint(sum([1,2,3])/3)\n```</Code>"
    "<Execute>\n[Error]:\nTraceback: x\n</Execute><Answer>42</Answer>"
)


def stage2_template(model: Path):
    cfg = {"stage2": yaml.safe_load((REPO / "config/config.yaml").read_text())["stage2"]}
    validate_config(cfg, load_schema(REPO / "config/schema.yaml"))
    argv = sft_args(
        cfg["stage2"], model, [Path("unused.jsonl")], Path("unused-out"), mask_execute=True, chat=read_format(model)
    )
    args, remaining = parse_args(SftArguments, argv)
    assert not remaining
    template = args.get_template()
    template.set_mode("train")
    return template


def test_execute_spans_are_masked_and_nothing_else(tiny_vocab):
    ids_of = json.loads((tiny_vocab / "tags.json").read_text())
    template = stage2_template(tiny_vocab)
    enc = template.encode(
        {"messages": [{"role": "user", "content": "# Instruction\nQ"}, {"role": "assistant", "content": RESPONSE}]}
    )
    input_ids, labels = enc["input_ids"], enc["labels"]
    tok = template.tokenizer
    im_start, im_end = tok.convert_tokens_to_ids("<|im_start|>"), tok.convert_tokens_to_ids("<|im_end|>")
    header = tok.encode("assistant\n", add_special_tokens=False)
    start = max(i for i, t in enumerate(input_ids) if t == im_start) + 1 + len(header)
    end = input_ids.index(im_end, start)
    assert tok.decode(input_ids[start:end], skip_special_tokens=False) == RESPONSE

    inside, spans = False, 0
    for i in range(start, end + 1):
        t = input_ids[i]
        if t == ids_of["<Execute>"]:
            inside, spans = True, spans + 1
        if inside:
            assert labels[i] == -100, f"token {i} ({tok.decode([t])!r}) inside <Execute> is trained"
        else:
            assert labels[i] == t, f"assistant token {i} ({tok.decode([t])!r}) is masked"
        if t == ids_of["</Execute>"]:
            inside = False
    assert spans == 2
    assert all(label == -100 for label in labels[:start])
