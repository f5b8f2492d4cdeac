"""How the tag embedding init (`vocab.init`: mean or spelled) changes what the base model does with the ten tags.

For each init the base checkpoint gets the tags (`extend_vocab`), then, on the shipped stage-2 trajectories
(teacher-forced, `<Execute>` spans left out as stage 2 masks them): the mean negative log-likelihood of the tag
tokens, and of the other assistant tokens. With `--steps K`: K AdamW steps of full fine-tuning on the same
trajectories (batch 1, float32; the demo's stage-2 learning rate), the same figures again, and the greedy reply to one
held-out file prompt (does it open with a tag?). The last lines printed are the figures, one line per init.

    .venv/bin/python bench/tag_init.py [--base resources/models/smollm2-135m-instruct] [--steps 0]
"""

import argparse
import json
import re
import tempfile
import time
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from darecipe.agent import State, render_prompt
from darecipe.vocab import extend_vocab

EXECUTE_SPLIT = re.compile(r"(<Execute>.*?</Execute>)", re.DOTALL)
PROMPT = '# Instruction\nHow many tracks does the Chinook database contain?\n\n# Data\nFile 1: {"name": "Chinook_Sqlite.sqlite", "size": "864.0KB"}'


def examples(tok, paths: list[Path]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(input ids, labels) per trajectory: labels on the assistant text outside <Execute> spans."""
    out = []
    for path in paths:
        for line in path.read_text().splitlines():
            msgs = json.loads(line)["messages"]
            prefix = render_prompt(tok, State("x", msgs[0]["content"]))
            ids = tok.encode(prefix, add_special_tokens=False)
            labels = [-100] * len(ids)
            for part in EXECUTE_SPLIT.split(msgs[1]["content"]):
                piece = tok.encode(part, add_special_tokens=False)
                ids += piece
                labels += [-100] * len(piece) if part.startswith("<Execute>") else piece
            ids.append(tok.eos_token_id)
            labels.append(tok.eos_token_id)
            out.append((torch.tensor([ids]), torch.tensor([labels])))
    return out


def nll(model, data, tag_ids: set[int]) -> tuple[float, float]:
    tag, other = [], []
    with torch.no_grad():
        for ids, labels in data:
            logp = torch.log_softmax(model(ids).logits[0, :-1].float(), -1)
            target = labels[0, 1:]
            for pos in (target != -100).nonzero().flatten().tolist():
                t = int(target[pos])
                (tag if t in tag_ids else other).append(-float(logp[pos, t]))
    return sum(tag) / len(tag), sum(other) / len(other)


def reply(model, tok) -> str:
    ids = torch.tensor([tok.encode(render_prompt(tok, State("x", PROMPT)), add_special_tokens=False)])
    with torch.no_grad():
        gen = model.generate(ids, max_new_tokens=40, do_sample=False, pad_token_id=tok.pad_token_id)
    return tok.decode(gen[0, ids.shape[1] :], skip_special_tokens=False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", type=Path, default=Path("resources/models/smollm2-135m-instruct"))
    ap.add_argument("--data", type=Path, nargs="*", default=None, help="stage-2 trajectory files")
    ap.add_argument("--steps", type=int, default=0)
    ap.add_argument("--lr", type=float, default=3e-4)
    args = ap.parse_args()
    paths = args.data or sorted(
        p
        for p in Path("results/data/synthesis").glob("*.jsonl")
        if not p.name.endswith((".rl.jsonl", ".rejects.jsonl")) and p.stat().st_size
    )
    rows = []
    for init in ("mean", "spelled"):
        with tempfile.TemporaryDirectory() as tmp:
            info = extend_vocab(args.base, Path(tmp) / "v", special=False, init=init)
            tok = AutoTokenizer.from_pretrained(Path(tmp) / "v")
            model = AutoModelForCausalLM.from_pretrained(Path(tmp) / "v")
        tag_ids = set(info["tag_ids"].values())
        data = examples(tok, paths)
        row = {"init": init, "trajectories": len(data), "before": nll(model.eval(), data, tag_ids)}
        if args.steps:
            torch.manual_seed(0)
            opt = torch.optim.AdamW(model.parameters(), lr=args.lr)
            model.train()
            start = time.time()
            for step in range(args.steps):
                ids, labels = data[step % len(data)]
                loss = model(input_ids=ids, labels=labels).loss
                loss.backward()
                opt.step()
                opt.zero_grad()
            row["train_s"] = round(time.time() - start, 1)
            row["after"] = nll(model.eval(), data, tag_ids)
            row["reply"] = reply(model, tok)
        rows.append(row)
    for r in rows:
        after = (
            (
                f"; after {args.steps} steps (lr {args.lr}, {r['train_s']} s): tag NLL {r['after'][0]:.2f}, other "
                f"{r['after'][1]:.2f}, reply {r['reply'][:60]!r}"
            )
            if args.steps
            else ""
        )
        print(
            f"init {r['init']:<8} {r['trajectories']} trajectories: tag-token NLL {r['before'][0]:.2f}, other tokens "
            f"{r['before'][1]:.2f}{after}"
        )


if __name__ == "__main__":
    main()
