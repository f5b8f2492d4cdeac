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


def run_script(main, smk) -> None:
    """Run a rule script's `main(smk, log)`; a user-fixable error ends as one line in the log and on stderr."""
    from .io import InputError

    log = RuleLog(smk.log[0] if smk.log else None)
    try:
        main(smk, log)
    except InputError as e:
        log(f"ERROR: {e}")
        sys.stderr.write(f"{smk.rule}: {e}\n")
        sys.exit(1)
