"""Records per second of the stage-1 token counts (rule stage1_set_tokens: every record of a set tokenised with the
training tokenizer) on one core and on all of the machine's cores, on a generated set. The last line printed is
the figure: the speed-up with all cores (the rule runs with the job's cores, `threads: workflow.cores`).

    .venv/bin/python bench/set_tokens.py [--records 20000] [--words 600]
"""

import argparse
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

from darecipe.mix import write_set
from darecipe.tiny_model import packaged_tokenizer_dir

WORDS = ("table", "value", "year", "sum", "rate", "<Analyze>", "</Analyze>", "the", "2019", "12.5", "pandas", "df")


def generate(path: Path, n: int, words: int) -> None:
    rng = random.Random(0)
    recs = [
        {
            "messages": [
                {"role": "user", "content": " ".join(rng.choices(WORDS, k=words // 4))},
                {"role": "assistant", "content": " ".join(rng.choices(WORDS, k=words))},
            ],
            "id": str(i),
        }
        for i in range(n)
    ]
    write_set(recs, path)


def timed(path: Path, threads: int) -> float:
    code = (
        "import sys, time; from darecipe.mix import count_tokens; t = time.perf_counter(); "
        f"c = count_tokens(sys.argv[1], sys.argv[2], threads={threads}); "
        "print(time.perf_counter() - t, int(c['n_tokens'].sum()))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(path), str(packaged_tokenizer_dir() / "tokenizer.json")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return float(out[0]), int(out[1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=20000)
    ap.add_argument("--words", type=int, default=600)
    args = ap.parse_args()
    cores = len(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "set.arrow"
        generate(path, args.records, args.words)
        one, tokens = timed(path, 1)
        print(f"1 core: {args.records / one:,.0f} records/s ({tokens / one:,.0f} tokens/s, {tokens:,} tokens)")
        all_, _ = timed(path, cores)
        print(f"{cores} cores: {args.records / all_:,.0f} records/s ({tokens / all_:,.0f} tokens/s)")
        print(f"421,060 records at that rate: ~{421060 / (args.records / all_):,.0f} s on {cores} cores")
    print(f"token counts: {one / all_:.2f}x with {cores} cores")


if __name__ == "__main__":
    main()
