"""A rule's log: timestamped lines appended to `snakemake.log[0]`, flushed as they are written."""

from __future__ import annotations

import sys
import time
from pathlib import Path


class RuleLog:
    def __init__(self, path: str | Path | None):
        self.path = Path(path) if path else None
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text("")

    def __call__(self, msg: str) -> None:
        line = f"[{time.strftime('%Y-%m-%d %H:%M:%S')}] {msg}\n"
        if self.path:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(line)
        else:
            sys.stderr.write(line)


def die_with_parent() -> None:
    """End this process when the one that started it (Snakemake) ends, even by SIGKILL: a job must not run on,
    and the sandboxes it holds end with it (see docs/sandbox.md)."""
    import ctypes
    import os
    import signal

    parent = os.getppid()
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the parent ended before the signal was armed
        os._exit(1)


def run_script(main, smk) -> None:
    """Run a rule script's `main(smk, log)`; a user-fixable error ends as one line in the log and on stderr."""
    from .io import InputError

    die_with_parent()
    log = RuleLog(smk.log[0] if smk.log else None)
    try:
        main(smk, log)
    except InputError as e:
        log(f"ERROR: {e}")
        sys.stderr.write(f"{smk.rule}: {e}\n")
        sys.exit(1)
