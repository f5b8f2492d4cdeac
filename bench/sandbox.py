"""Per-block overhead of the jailed sandbox with fresh state per block (the paper's semantics), every limit in
force (jail, per-block namespaces, memory and process limits, disk quota, output cap, timeout).

Two blocks: trivial code (`print(1)`) and one that uses pandas. Overhead = wall time of `Session.run` minus the
time the same code takes in this process once pandas is imported (~0 for print(1)).

Measured as an agent loop sees it: one block, then a pause like the model's next turn (`--pause-ms`, during which
the previous block's processes are torn down and the next block's processes are forked ahead), then the next.
Back-to-back blocks (no pause) are printed too: there each block also waits for the teardown of the one before.
Paid once and printed apart: starting the template (per pipeline process) and opening a session (per episode:
its tmpfs and the copy of its workspace). The last line printed is the figure.

    .venv/bin/python bench/sandbox.py [--blocks 40] [--pause-ms 100]
"""

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from darecipe.jail import get_pool
from darecipe.sandbox import SandboxLimits, Session, describe_isolation

PANDAS = "import pandas as pd\nprint(pd.DataFrame({'a': [1, 2]})['a'].sum())"


def in_process_ms(code: str, n: int = 50) -> float:
    import contextlib
    import io

    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            exec(compile(code, "<stdin>", "exec"), {"__name__": "__main__"})
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def per_block_ms(session: Session, code: str, n: int, pause_s: float) -> list[float]:
    times = []
    for _ in range(n):
        time.sleep(pause_s)
        t0 = time.perf_counter()
        res = session.run(code)
        times.append((time.perf_counter() - t0) * 1000)
        assert res.ok, res.output
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--blocks", type=int, default=40)
    ap.add_argument("--pause-ms", type=float, default=100.0)
    args = ap.parse_args()
    limits = SandboxLimits(timeout_s=30)
    tmp = Path(tempfile.mkdtemp(prefix="sandbox-bench-"))
    ws = tmp / "ws"
    ws.mkdir()
    (ws / "data.csv").write_text("a,b\n1,2\n")
    t0 = time.perf_counter()
    get_pool(limits.jailed, limits.preload)
    start_s = time.perf_counter() - t0
    print(describe_isolation(limits))
    base = {"print(1)": in_process_ms("print(1)"), "pandas": in_process_ms(PANDAS)}
    session = Session(ws, limits)
    try:
        t0 = time.perf_counter()
        session.run("pass")  # opens the session: its tmpfs and the copy of its workspace
        open_ms = (time.perf_counter() - t0) * 1000
        print(
            f"paid once: template start {start_s:.2f} s per pipeline process; session open + first block "
            f"{open_ms:.1f} ms per episode"
        )
        figures = {}
        for name, code in (("print(1)", "print(1)"), ("pandas", PANDAS)):
            paced = per_block_ms(session, code, args.blocks, args.pause_ms / 1000)
            tight = per_block_ms(session, code, args.blocks, 0.0)
            figures[name] = statistics.median(paced) - base[name]
            print(
                f"{name}: overhead {figures[name]:.1f} ms/block (median; p90 "
                f"{sorted(paced)[int(0.9 * len(paced))] - base[name]:.1f}) with a {args.pause_ms:g} ms pause between "
                f"blocks; back-to-back {statistics.median(tight) - base[name]:.1f} ms/block; "
                f"in-process run {base[name]:.2f} ms"
            )
    finally:
        session.close()
        shutil.rmtree(tmp, ignore_errors=True)
    print(
        f"sandbox: fresh-state overhead {figures['print(1)']:.1f} ms per trivial block, "
        f"{figures['pandas']:.1f} ms per pandas block (target <= 20 ms each)"
    )


if __name__ == "__main__":
    main()
