"""One progress bar style for every command: on stderr, and sparse when stderr is not a terminal."""

from __future__ import annotations

import sys

LOG_INTERVAL_S = 30.0  # seconds between progress lines in a log


def progress_bar(iterable=None, *, enabled: bool = True, **kwargs):
    """A tqdm bar on stderr; in logs (no TTY) it redraws every 30 s instead of ten times a second, and only
    once the work has run 30 s: a short job's log (or a bad input's error) is then not buried in bars."""
    from tqdm import tqdm

    interactive = sys.stderr.isatty()
    return tqdm(
        iterable,
        file=sys.stderr,
        disable=not enabled,
        dynamic_ncols=interactive,
        mininterval=0.1 if interactive else LOG_INTERVAL_S,
        delay=0 if interactive else LOG_INTERVAL_S,
        **kwargs,
    )
