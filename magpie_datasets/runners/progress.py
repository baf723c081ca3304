"""Progress bars of a resumable run: one per step, rows done, tokens/s, rows in flight and what the
loaded engines hold (rows decoding out of their capacity, requests waiting)."""

from __future__ import annotations

import threading

from tqdm.auto import tqdm

from ..engines import engine_occupancy


class _StepBar:
    """One step's progress: rows done, its tokens/s and ETA (tqdm), over the batches of a run."""

    def __init__(self, fn, total: int, position: int):
        self.bar = tqdm(total=total, desc=getattr(fn, "__name__", "step"), unit="row", position=position)
        self.tokens, self.seconds = 0, 0.0
        self.in_flight = 0  # rows of the batches being computed (set by the runner)
        self.lock = threading.Lock()

    def update(self, rows: int, tokens: int, seconds: float) -> None:
        with self.lock:  # batches in flight finish in several threads
            self.tokens, self.seconds = self.tokens + tokens, self.seconds + seconds
            shown = [f"{self.tokens / max(self.seconds, 1e-9):.0f} tok/s"] if self.tokens else []
            if self.in_flight:  # an engine fed too few rows shows here
                shown.append(f"{self.in_flight} rows in flight")
            if occupancy := engine_occupancy():
                shown.append(occupancy)
            self.bar.set_postfix_str(", ".join(shown), refresh=False)
            self.bar.update(rows)
