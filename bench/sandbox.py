"""Per-block overhead of the sandbox: trivial code (`print(1)`) and a block that imports pandas, with isolation
on, in both modes (fresh interpreter per block, and one persistent interpreter per trajectory).

Overhead = wall time per block minus the time the same code takes in this process (~0 for print(1)).
Target: <= 20 ms per block in persistent mode. The last line printed is the figure.

    .venv/bin/python bench/sandbox.py [--blocks 50]
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from darecipe.sandbox import PersistentInterpreter, SandboxLimits, describe_isolation, run_code

PANDAS = "import pandas as pd\nprint(pd.DataFrame({'a': [1, 2]})['a'].sum())"


def per_block(run, code: str, n: int) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        res = run(code)
        times.append(time.perf_counter() - t0)
        assert res.ok, res.output
    return statistics.median(times) * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--blocks", type=int, default=50)
    args = ap.parse_args()
    limits = SandboxLimits(timeout_s=30)
    ws = Path(tempfile.mkdtemp(prefix="sandbox-bench-")) / "ws"
    ws.mkdir()
    print(describe_isolation(limits))
    fresh = lambda code: run_code(code, ws, limits)  # noqa: E731
    print(f"fresh interpreter: print(1) {per_block(fresh, 'print(1)', args.blocks):.1f} ms/block, "
          f"pandas {per_block(fresh, PANDAS, max(5, args.blocks // 5)):.1f} ms/block")  # fmt: skip
    interp = PersistentInterpreter(ws, limits)
    interp.run("pass")  # start-up, paid once per trajectory
    try:
        trivial = per_block(interp.run, "print(1)", args.blocks)
        pandas = per_block(interp.run, PANDAS, args.blocks)
    finally:
        interp.close()
    print(f"persistent interpreter: print(1) {trivial:.2f} ms/block, pandas block {pandas:.2f} ms/block")
    print(f"sandbox: persistent mode overhead {trivial:.2f} ms per block (target <= 20 ms)")


if __name__ == "__main__":
    main()
