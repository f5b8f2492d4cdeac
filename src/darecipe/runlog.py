"""A rule's log: the library logs through `logging` (loggers under `darecipe`); a rule script sends them, and its own
lines, to `snakemake.log[0]` as timestamped lines, flushed as they are written (subprocesses, such as the trainer,
append their output to the same file)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

FORMAT = "[%(asctime)s] %(message)s"
DATEFMT = "%Y-%m-%d %H:%M:%S"


class _Formatter(logging.Formatter):
    """Timestamped lines; a warning or an error says so first."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        if record.levelno >= logging.WARNING:
            ts, _, msg = line.partition("] ")
            line = f"{ts}] {record.levelname}: {msg}"
        return line


def setup_logging(path: str | Path | None, echo: bool = False) -> logging.Logger:
    """Send the `darecipe` loggers to `path` (a new file), or to stderr, or both (`echo`); return the rule's own
    logger."""
    root = logging.getLogger("darecipe")
    root.setLevel(logging.INFO)
    root.propagate = False
    for h in list(root.handlers):
        root.removeHandler(h)
        h.close()
    handlers: list[logging.Handler] = []
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(path, mode="w", encoding="utf-8"))
    if echo or not path:
        handlers.append(logging.StreamHandler(sys.stderr))
    for handler in handlers:
        handler.setFormatter(_Formatter(FORMAT, DATEFMT))
        root.addHandler(handler)
    return logging.getLogger("darecipe.rule")


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


def run_script(main, smk=None) -> None:
    """Run a rule script's `main(smk, log)` (`log` writes a line to the rule's log); a user-fixable error ends as one
    line in the log and on stderr. A script run by hand (no `snakemake` object) gets its job's object from the
    command line (darecipe.debug) and echoes its log to stderr."""
    from .io import InputError

    by_hand = smk is None
    try:
        if by_hand:
            from .debug import from_command_line

            smk = from_command_line(sys.argv[0])
        else:
            die_with_parent()
    except InputError as e:
        sys.exit(f"error: {e}")
    logger = setup_logging(smk.log[0] if smk.log else None, echo=by_hand)
    try:
        main(smk, logger.info)
    except InputError as e:
        logger.error(str(e))
        sys.stderr.write(f"{smk.rule}: {e}\n")
        sys.exit(1)
