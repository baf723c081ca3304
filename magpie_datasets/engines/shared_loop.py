"""One engine, many calling threads: a call that arrives while the engine runs joins the run.

A stage's `engine.generate(...)` blocks its thread until its prompts are done. When a runner
keeps several checkpoint batches in flight (one thread each), their calls meet here: the first
caller drives the engine's loop, and every call that arrives meanwhile is handed to that loop
between two decoding steps. The engine's batch refills as rows finish, instead of waiting for
the slowest row of each call (continuous batching across calls, as vLLM's own server does).
There is no thread of our own: the loop runs in whichever caller found the engine idle.

    loop = SharedLoop()
    loop.run(Call(payload), drive)   # drive(loop): while work: loop.take() new calls, step, loop.finish(call)
"""

from __future__ import annotations

import threading
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
        self._running = False

    def run(self, call: Call, drive: Callable[["SharedLoop"], None]) -> Any:
        """Queue `call` and return its result: the engine runs `drive(self)` in this thread when
        no other caller is driving it, else this thread waits for the driver to finish the call."""
        with self._cond:
            self._pending.append(call)
            while self._running and not call.done:
                self._cond.wait()
            lead = not call.done
            if lead:
                self._running = True
        if lead:
            try:
                drive(self)
            except BaseException as error:
                with self._cond:  # every call the failed loop held fails with it
                    for held in self._taken:
                        if not held.done:
                            held.error, held.done = error, True
            finally:
                with self._cond:
                    self._taken = [c for c in self._taken if not c.done]
                    self._running = False
                    self._cond.notify_all()
        if not call.done:
            with self._cond:
                self._pending = [c for c in self._pending if c is not call]
            raise RuntimeError("the engine's loop ended before this call finished")
        if call.error is not None:
            raise call.error
        return call.result

    def take(self, group: Hashable = None) -> list[Call]:
        """Queued calls to start now, oldest first. `group=None`: with no group running, the oldest
        call's group (or every call, when none has a group). Otherwise the calls of `group`, and
        none once a call of another group waits: the running group drains, then that call runs."""
        with self._cond:
            if not self._pending:
                return []
            groups = {c.group for c in self._pending}
            if group is None:
                group = self._pending[0].group
            elif groups != {group}:
                return []
            calls = [c for c in self._pending if c.group == group or group is None]
            self._pending = [c for c in self._pending if c not in calls]
            self._taken.extend(calls)
            return calls

    def finish(self, call: Call, result: Any = None) -> None:
        """Hand `call` its result and wake its caller."""
        with self._cond:
            call.result, call.done = result, True
            self._taken.remove(call)
            self._cond.notify_all()
