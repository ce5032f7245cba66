"""A small progress line with rate and ETA on stderr (no dependency)."""

from __future__ import annotations

import sys
import time


class Progress:
    """``Progress(total, label)``; call ``update(n, **info)``, then ``close()``.

    Redraws at most every 0.2 s; on a non-terminal stream it prints a line
    every 10% so logs stay readable.
    """

    def __init__(self, total: int, *, label: str = "", stream=None):
        self.total = max(int(total), 0)
        self.label = label
        self.stream = stream or sys.stderr
        self.done = 0
        self.start = time.monotonic()
        self._last_draw = 0.0
        self._last_decile = -1
        self.info: dict = {}
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()

    def update(self, n: int = 1, **info) -> None:
        self.done += n
        self.info.update(info)
        now = time.monotonic()
        decile = int(10 * self.done / self.total) if self.total else 10
        if self.tty and now - self._last_draw >= 0.2 or self.done >= self.total:
            self._draw(now, end="\r" if self.tty else "\n")
        elif not self.tty and decile != self._last_decile:
            self._draw(now, end="\n")
        self._last_decile = decile

    def _draw(self, now: float, *, end: str) -> None:
        self._last_draw = now
        elapsed = now - self.start
        rate = self.done / elapsed if elapsed > 0 else 0.0
        eta = (self.total - self.done) / rate if rate > 0 else float("nan")
        extra = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in self.info.items())
        self.stream.write(
            f"{self.label} {self.done}/{self.total} [{elapsed:5.1f}s elapsed, "
            f"{rate:.1f}/s, ETA {eta:5.1f}s] {extra}".rstrip() + end
        )
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
