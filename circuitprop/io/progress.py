"""Progress of long loops: a bar on a terminal or in Jupyter (a widget with ipywidgets, text without it), plain
periodic lines anywhere else.

Off a terminal (a log file, a batch job, ngspice runs of minutes per epoch) a progress bar prints nothing
useful, so :func:`progress` prints one plain line every ``interval`` seconds instead (to standard error, like
the bar): ``epoch 3/10: 1,200/3,750 (32 %), 45 s, loss=1.2e-05``.
"""
from __future__ import annotations

import sys
import time

from tqdm import tqdm

#: Seconds between two plain progress lines off a terminal.
PLAIN_INTERVAL = 60.0


def progress(iterable, total=None, desc="", initial=0, enabled=True, interval=PLAIN_INTERVAL, stream=None):
    """Iterate ``iterable`` with a progress display: a tqdm bar on a terminal or in Jupyter, plain lines
    every ``interval`` seconds elsewhere, nothing when not ``enabled``."""
    stream = stream or sys.stderr
    if not enabled:
        return _Plain(iterable, total, desc, initial, float("inf"), stream)
    if "ipykernel" in sys.modules and _widgets():
        from tqdm.notebook import tqdm as notebook_tqdm  # optional: needs ipywidgets
        return notebook_tqdm(iterable, total=total, desc=desc, initial=initial, leave=False, mininterval=0.5)
    if "ipykernel" in sys.modules:  # Jupyter without ipywidgets: a text bar, no warning
        return tqdm(iterable, total=total, desc=desc, initial=initial, leave=False, mininterval=0.5, file=sys.stdout)
    if getattr(stream, "isatty", lambda: False)():
        return tqdm(iterable, total=total, desc=desc, initial=initial, leave=False, mininterval=0.5, file=stream)
    return _Plain(iterable, total, desc, initial, interval, stream)


def _widgets() -> bool:
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        return False
    return True


class _Plain:
    """An iterable that prints a plain progress line every ``interval`` seconds (the tqdm methods the loops use
    are accepted)."""

    def __init__(self, iterable, total, desc, initial, interval, stream):
        self.iterable, self.total, self.desc, self.n = iterable, total, desc, initial
        self.interval, self.stream = interval, stream
        self.postfix = ""
        self.start = self.last = time.perf_counter()

    def __iter__(self):
        for item in self.iterable:
            yield item
            self.update(1)

    def update(self, n: int = 1):
        """Count ``n`` more items done (for loops that are not iterations over the progress object)."""
        self.n += n
        now = time.perf_counter()
        if now - self.last >= self.interval:
            self.last = now
            share = f" ({100 * self.n / self.total:.0f} %)" if self.total else ""
            of = f"/{self.total:,}" if self.total else ""
            print(f"{self.desc}: {self.n:,}{of}{share}, {now - self.start:.0f} s{self.postfix}", file=self.stream,
                  flush=True)

    def set_postfix(self, **values):
        self.postfix = "".join(f", {k}={v}" for k, v in values.items())

    def close(self):
        pass
