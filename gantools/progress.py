"""One progress bar style for every command: on stderr, and sparse when stderr is not a terminal."""

from __future__ import annotations

import sys


def progress_bar(iterable=None, *, enabled: bool = True, **kwargs):
    """A tqdm bar on stderr; in logs (no TTY) it redraws every 30 s instead of ten times a second."""
    from tqdm import tqdm

    interactive = sys.stderr.isatty()
    return tqdm(iterable, file=sys.stderr, disable=not enabled, dynamic_ncols=interactive,
                mininterval=0.1 if interactive else 30.0, **kwargs)
