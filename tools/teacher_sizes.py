"""Maintainers' tool: how large the teacher's requests and replies are, per synthesis step, on the shipped data.

Runs the embedded default's teacher rules in a scratch copy of the repository against the project's test server,
which answers from the recordings (so every request is the one the pipeline really builds), records each request
and reply, and prints their sizes in Qwen3 tokens (the chat template's layout) per step: the check docs/teacher.md
gives on `plan.teacher`'s assumptions (the replies are the hand-written recordings, shorter than a strong teacher's
reasoning).

    .venv/bin/python tools/teacher_sizes.py
"""

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
STEPS = {  # the first words of each template -> step
    "You are a careful data-science teacher writing worked solutions for a student model.": "distill",
    "You are a careful data-science teacher improving": "refine",
    "You are a careful data-science teacher writing table-to-text": "tablegpt",
    "You are a careful data-science teacher writing worked solutions for a student model that c": "file",
    "You are summarising the progress": "summary",
    "You are the questioner": "questioner",
    "You are the inspector": "inspector",
}


def step_of(messages: list[dict]) -> str:
    text = messages[-1]["content"] if messages[0]["role"] != "system" else ""
    for prefix, step in STEPS.items():
        if text.startswith(prefix):
            return step
    return "solver turn"


def main() -> None:
    from tokenizers import Tokenizer

    from darecipe.mix import chat_text
    from darecipe.testserver import FakeOpenAI, recorded_reply
    from darecipe.tiny_model import packaged_tokenizer_dir

    tok = Tokenizer.from_file(str(packaged_tokenizer_dir() / "tokenizer.json"))
    seen: list[tuple[list[dict], str]] = []
    replay = recorded_reply(str(REPO / "resources/recordings"))

    def reply(messages, body):
        text = replay(messages, body)
        seen.append((messages, text))
        return text

    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    with tempfile.TemporaryDirectory() as tmp, FakeOpenAI(reply=reply) as server:
        work = Path(tmp)
        for rel in files:
            if (REPO / rel).is_file():
                (work / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(REPO / rel, work / rel)
        overlay = {"llm": {"backend": "openai", "base_url": server.base_url, "api_key_env": None}}
        (work / "overlay.yaml").write_text(yaml.safe_dump(overlay))
        targets = ["results/data/stage1/train.jsonl", "results/data/interaction", "results/summary/with_summary.jsonl"]
        subprocess.run(
            [
                str(Path(sys.executable).parent / "snakemake"),
                "--cores",
                str(os.cpu_count()),
                *targets,
                "--configfile",
                "config/config.yaml",
                "overlay.yaml",
            ],
            cwd=work,
            check=True,
            capture_output=True,
        )
    sizes = defaultdict(lambda: ([], []))
    for messages, text in seen:
        prompt, out = sizes[step_of(messages)]
        prompt.append(len(tok.encode(chat_text(messages), add_special_tokens=False).ids))
        out.append(len(tok.encode(text, add_special_tokens=False).ids))
    print(f"{'step':<12} {'requests':>8} {'prompt mean':>12} {'prompt max':>11} {'reply mean':>11} {'reply max':>10}")
    for step, (prompt, out) in sorted(sizes.items()):
        print(
            f"{step:<12} {len(prompt):>8} {statistics.mean(prompt):>12.0f} {max(prompt):>11} "
            f"{statistics.mean(out):>11.0f} {max(out):>10}"
        )


if __name__ == "__main__":
    main()
