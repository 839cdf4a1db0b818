"""Progress lines for long work: at most one every :data:`PROGRESS_SECONDS`."""

from __future__ import annotations

import logging
import time

PROGRESS_SECONDS = 30.0  # a progress line at most this often

log = logging.getLogger("mlpipe.progress")


class Progress:
    """Counts work done and logs ``<what>: <done>/<total> <unit> (rows, time, rate, time left)``.

    Nothing is logged before the first :data:`PROGRESS_SECONDS` have passed, so short work
    (a small table, a test) stays quiet, nor after the last step (the work's own summary
    line follows).
    """

    def __init__(self, what: str, total: int, unit: str = "partitions") -> None:
        """Start the clock for ``total`` steps of ``what``."""
        self.what, self.total, self.unit = what, total, unit
        self.done = self.rows = 0
        self.started = time.monotonic()
        self.due = self.started + PROGRESS_SECONDS

    def step(self, rows: int = 0) -> None:
        """One more step done, of ``rows`` rows; logs a line when one is due."""
        self.done += 1
        self.rows += rows
        now = time.monotonic()
        if now >= self.due and self.done < self.total:
            spent = now - self.started
            left = spent / self.done * (self.total - self.done)
            log.info(
                "%s: %d/%d %s (%s rows, %.0f s, %s rows/s, about %.0f s left)",
                self.what,
                self.done,
                self.total,
                self.unit,
                f"{self.rows:,}",
                spent,
                f"{self.rows / spent:,.0f}" if spent > 0 else "-",
                left,
            )
            self.due = now + PROGRESS_SECONDS
