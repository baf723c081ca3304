"""engines/shared_loop.py: calls from many threads meet in one engine loop, driven by the loop's own thread."""

from __future__ import annotations

import threading
import time

import pytest

from magpie_datasets.engines.shared_loop import Call, SharedLoop


class StepEngine:
    """A stand-in engine loop: each step 'decodes' one token of every running call; a call of
    `length` tokens finishes after that many steps. Records which calls ran in each step."""

    def __init__(self, per_step: float = 0.002):
        self.steps: list[tuple] = []
        self.drivers: set[str] = set()
        self.per_step = per_step

    def drive(self, loop: SharedLoop) -> None:
        self.drivers.add(threading.current_thread().name)
        running: dict[Call, int] = {}
        while not loop.closing:
            for call in loop.take():
                running[call] = call.payload
            if not running:
                return
            time.sleep(self.per_step)
            self.steps.append(tuple(sorted(c.payload for c in running)))
            for call in list(running):
                running[call] -= 1
                if running[call] == 0:
                    del running[call]
                    loop.finish(call, f"done {call.payload}")


def test_calls_from_many_threads_share_the_engines_steps_and_each_gets_its_result():
    loop, engine, results = SharedLoop(), StepEngine(), {}

    def caller(k):
        results[k] = loop.run(Call(10 + k), engine.drive)

    threads = [threading.Thread(target=caller, args=(k,), name=f"caller-{k}") for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {k: f"done {10 + k}" for k in range(6)}
    # calls ran together: the steps were far fewer than the calls' tokens one after another
    assert len(engine.steps) < sum(10 + k for k in range(6)) // 2
    assert max(len(s) for s in engine.steps) > 1
    assert engine.drivers == {"magpie-engine-loop"}  # the loop's own thread drove it, never a caller


def test_a_caller_returns_when_its_own_call_is_done_while_the_loop_runs_on():
    """The first caller's short call must not wait for a long call that joined it: its batch can
    go on to its next step meanwhile (a caller that drove the loop itself could not)."""
    loop, engine, finished = SharedLoop(), StepEngine(per_step=0.005), []

    def caller(length):
        loop.run(Call(length), engine.drive)
        finished.append((length, len(engine.steps)))

    short = threading.Thread(target=caller, args=(3,))
    short.start()
    while not engine.steps:  # the short call is running: the long one joins it
        time.sleep(0.001)
    long = threading.Thread(target=caller, args=(60,))
    long.start()
    short.join()
    long.join()
    assert [length for length, _ in finished] == [3, 60]
    assert finished[0][1] <= 5  # the short caller was back after its own 3 steps, not after 60


def test_a_call_of_another_group_waits_for_the_running_group_to_drain():
    loop = SharedLoop()
    first, other, same = Call("a", group="A"), Call("b", group="B"), Call("c", group="A")
    loop._pending = [first]
    assert loop.take() == [first]  # no group running: the oldest call's group
    loop._pending = [other, same]
    assert loop.take("A") == []  # a B call waits: A takes no more, it drains
    assert loop.take() == [other]  # then B runs (the oldest waiting call's group)
    assert loop.take("B") == []
    assert loop.take() == [same]


def test_an_engine_error_reaches_every_call_it_held_and_the_loop_recovers():
    loop = SharedLoop()
    started = threading.Event()

    def failing(loop):
        started.set()
        time.sleep(0.05)  # let the other caller queue up and be taken
        loop.take()
        raise RuntimeError("engine broke")

    errors = []

    def caller(payload):
        try:
            loop.run(Call(payload), failing)
        except RuntimeError as e:
            errors.append(str(e))

    first = threading.Thread(target=caller, args=(1,))
    first.start()
    started.wait()
    second = threading.Thread(target=caller, args=(2,))
    second.start()
    first.join()
    second.join()
    assert errors == ["engine broke", "engine broke"]
    assert loop.run(Call(3), lambda lp: [lp.finish(c, "ok") for c in lp.take()]) == "ok"  # usable again


def test_a_driver_that_forgets_a_call_is_an_error_not_a_hang():
    loop = SharedLoop()
    with pytest.raises(RuntimeError, match="ended before this call finished"):
        loop.run(Call(1), lambda lp: None)


def test_close_ends_the_loops_thread_between_two_steps_and_fails_the_calls_it_held():
    """What runs at interpreter exit: the loop's thread stops between two steps and is joined, so no
    thread is inside a C++ call when the interpreter finalizes; a call it held fails, not hangs."""
    loop, engine, errors = SharedLoop(), StepEngine(per_step=0.01), []

    def call():
        try:
            loop.run(Call(10_000), engine.drive)
        except RuntimeError as err:
            errors.append(str(err))

    caller = threading.Thread(target=call)
    caller.start()
    while len(engine.steps) < 3:
        time.sleep(0.005)
    driver = loop._driver
    assert driver is not None and driver.is_alive()
    loop.close(timeout=5)
    assert not driver.is_alive() and len(engine.steps) < 100  # stopped at once, not after 10,000 steps
    caller.join(5)
    assert errors == ["the engine's loop ended before this call finished"]
    assert loop.take() == []  # a closed loop starts nothing more
