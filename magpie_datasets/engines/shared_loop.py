"""One engine, many calling threads: a call that arrives while the engine runs joins the run.

A stage's `engine.generate(...)` blocks its thread until its prompts are done. When a runner
keeps several checkpoint batches in flight (one thread each), their calls meet here: one thread
of the loop's own drives the engine while there is work, and every call that arrives meanwhile is
handed to it between two decoding steps. The engine's batch refills as rows finish, instead of
waiting for the slowest row of each call (continuous batching across calls, as vLLM's own server
does). Each caller returns as soon as its own call is done: were the loop run by one of the
callers, that caller's batch could not go on to its next step until the engine fell idle.

    loop = SharedLoop()
    loop.run(Call(payload), drive)   # drive(loop): while work: loop.take() new calls, step, loop.finish(call)
"""

from __future__ import annotations

import atexit
import threading
import weakref
from dataclasses import dataclass
from typing import Any, Callable, Hashable

__all__ = ["Call", "SharedLoop"]


@dataclass(eq=False)
class Call:
    """One `generate` call: what the engine needs to run it, and what it gives back.

    `group`: calls of different groups never run together (the transformers engine decodes one
    `Sampling` at a time); None joins any run.
    """

    payload: Any
    group: Hashable = None
    result: Any = None
    error: BaseException | None = None
    done: bool = False


class SharedLoop:
    """The meeting point of one engine's callers (see the module docstring)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._pending: list[Call] = []
        self._taken: list[Call] = []
        self._driver: threading.Thread | None = None
        self._took = False  # whether the running drive() has taken a call (one that takes none would spin)
        self.closing = False  # set at exit: drive() returns between two steps (`close`)
        _LOOPS.add(self)

    def close(self, timeout: float = 60.0) -> None:
        """End the loop's thread between two steps and wait for it (at most `timeout` seconds).
        Run at interpreter exit: a thread still inside a C++ call (a torch op) when the interpreter
        finalizes aborts the process ("terminate called without an active exception"), also when
        it was only winding down after its last call."""
        with self._cond:
            self.closing = True
            driver = self._driver
        if driver is not None and driver is not threading.current_thread():
            driver.join(timeout)

    def run(self, call: Call, drive: Callable[["SharedLoop"], None]) -> Any:
        """Queue `call` and return its result once the engine loop (`drive(self)`, run by the loop's
        own thread, started when a call finds none running) has finished it."""
        with self._cond:
            self._pending.append(call)
            if self._driver is None:
                self._driver = threading.Thread(target=self._drive, args=(drive,), name="magpie-engine-loop",
                                                daemon=True)  # an interrupted run must not wait for it
                self._driver.start()
            try:
                while not call.done:
                    self._cond.wait()
            finally:  # interrupted (Ctrl-C): a call still queued is withdrawn
                if call in self._pending:
                    self._pending.remove(call)
        if call.error is not None:
            raise call.error
        return call.result

    def _drive(self, drive: Callable[["SharedLoop"], None]) -> None:
        """The loop's thread: `drive` until no call is queued. A call the loop took and did not
        finish fails with the loop's error (or, with none, as forgotten)."""
        while True:
            self._took = False
            error: BaseException | None = None
            try:
                drive(self)
            except BaseException as caught:
                error = caught
            with self._cond:
                stalled = not self._took and self._pending  # drive() returned without taking them
                for held in self._taken + (self._pending if stalled else []):
                    held.error = error or RuntimeError("the engine's loop ended before this call finished")
                    held.done = True
                self._taken = []
                if stalled:
                    self._pending = []
                self._cond.notify_all()
                if not self._pending:
                    self._driver = None
                    return

    def take(self, group: Hashable = None) -> list[Call]:
        """Queued calls to start now, oldest first. `group=None`: with no group running, the oldest
        call's group (or every call, when none has a group). Otherwise the calls of `group`, and
        none once a call of another group waits: the running group drains, then that call runs."""
        with self._cond:
            if not self._pending or self.closing:
                return []
            groups = {c.group for c in self._pending}
            if group is None:
                group = self._pending[0].group
            elif groups != {group}:
                return []
            calls = [c for c in self._pending if c.group == group or group is None]
            self._pending = [c for c in self._pending if c not in calls]
            self._took = True
            self._taken.extend(calls)
            return calls

    def finish(self, call: Call, result: Any = None) -> None:
        """Hand `call` its result and wake its caller."""
        with self._cond:
            call.result, call.done = result, True
            self._taken.remove(call)
            self._cond.notify_all()


_LOOPS: weakref.WeakSet[SharedLoop] = weakref.WeakSet()


@atexit.register
def _close_loops() -> None:
    for loop in list(_LOOPS):
        loop.close()
