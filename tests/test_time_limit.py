"""`harness.bounded.time_limit`, the one wall-clock limit (suite rendering, `check-generator`):
nested limits and a host's alarm keep their deadlines, the repeating mode stops a loop that
swallows interruptions, off the main thread a trace function stands in for SIGALRM, and the
hard exit ends a process whose loop refuses to stop. Every block here runs well under 2 s."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from conftest import ROOT

from harness.bounded import TooMuchWork, time_limit
from harness.errors import HarnessError


class Stop(BaseException):  # what check-generator raises: not an Exception
    pass


class OuterAlarm(Exception):
    pass


def spin(seconds: float = 30.0) -> None:
    """A Python loop of its own frame (what a template or a decoding loop is)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


@pytest.fixture
def host_alarm():
    """A host's SIGALRM handler (a test harness's, say) that records when it fired; the
    timer and the handler found before are put back after the test."""
    fired: list[float] = []
    previous = signal.signal(signal.SIGALRM, lambda *a: fired.append(time.monotonic()))
    try:
        yield fired
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_an_outer_alarm_fires_at_its_own_time_inside_a_longer_limit(host_alarm):
    """A host alarm due before the inner limit's deadline went off only after the inner block
    ended (the inner limit had taken the timer): here 1.2 s late. It fires on time now."""
    t0 = time.monotonic()
    signal.setitimer(signal.ITIMER_REAL, 0.2)
    with time_limit(5, "inner"):
        spin(1.2)
    assert len(host_alarm) == 1
    assert host_alarm[0] - t0 < 0.8, f"the outer alarm fired {host_alarm[0] - t0:.2f} s in, not at 0.2 s"
    assert signal.getitimer(signal.ITIMER_REAL)[0] == 0  # a one-shot alarm is not re-armed


def test_nested_limits_each_keep_their_deadline():
    t0 = time.monotonic()
    with pytest.raises(TooMuchWork, match="outer took more than 0.2 s"):  # the outer ends first
        with time_limit(0.2, "outer"):
            with time_limit(5, "inner"):
                spin(3)
    assert time.monotonic() - t0 < 1.5
    t0 = time.monotonic()
    with pytest.raises(TooMuchWork, match="outer took more than 0.5 s"):
        with time_limit(0.5, "outer"):
            with pytest.raises(TooMuchWork, match="inner took more than 0.2 s"):  # the inner ends first
                with time_limit(0.2, "inner"):
                    spin(3)
            spin(3)  # ... and the outer still fires at its own deadline
    elapsed = time.monotonic() - t0
    assert 0.45 < elapsed < 1.8, elapsed
    assert signal.getitimer(signal.ITIMER_REAL)[0] == 0


def test_an_outer_alarm_is_re_armed_with_what_is_left_and_its_interval(host_alarm):
    signal.setitimer(signal.ITIMER_REAL, 0.6, 0.3)
    handler = signal.getsignal(signal.SIGALRM)
    with time_limit(5, "inner", error=Stop, repeat=1.0):
        spin(0.1)
    delay, interval = signal.getitimer(signal.ITIMER_REAL)
    assert 0 < delay <= 0.55 and interval == pytest.approx(0.3)
    assert signal.getsignal(signal.SIGALRM) is handler
    time.sleep(1.0)
    assert len(host_alarm) >= 2  # at ~0.6 s and again every 0.3 s


def test_check_generator_keeps_a_host_alarm(host_alarm, fixture_base):
    """check-generator's own limit (`_deadline`) disarmed the timer for good: an alarm the host
    had set (an outer time limit, a test harness's) never went off."""
    from harness.generator_check import check_generator

    def loop(ids, n):
        raise ValueError("user bug")

    signal.setitimer(signal.ITIMER_REAL, 30)
    handler = signal.getsignal(signal.SIGALRM)
    with pytest.raises(HarnessError, match="raised ValueError"):
        check_generator(loop, fixture_base, ["hi"], max_tokens=2, timeout=5)
    assert signal.getsignal(signal.SIGALRM) is handler
    assert 25 < signal.getitimer(signal.ITIMER_REAL)[0] <= 30, "the host's alarm was lost"
    for bad in (-1, float("nan")):  # was no limit at all, silently
        with pytest.raises(HarnessError, match="timeout must be a number of seconds"):
            check_generator(loop, fixture_base, ["hi"], max_tokens=2, timeout=bad)


def test_repeating_mode_stops_a_loop_that_swallows_interruptions():
    """`except Exception` in a `while True` lets a BaseException through; a loop that catches
    even that meets the next one (`repeat`)."""
    t0 = time.monotonic()
    with pytest.raises(Stop):
        with time_limit(0.2, "a loop", error=Stop, repeat=0.1):
            while True:
                try:
                    spin()
                except Exception:
                    pass
    assert time.monotonic() - t0 < 1.5
    swallowed = 0
    t0 = time.monotonic()
    with pytest.raises(Stop):
        with time_limit(0.2, "a loop", error=Stop, repeat=0.1) as limit:
            for _ in range(2):
                try:
                    spin()
                except BaseException:
                    swallowed += 1
            spin()
    assert swallowed == 2 and limit.fired == 3
    assert time.monotonic() - t0 < 1.5


def test_a_swallowed_interruption_still_fails_the_block_on_leaving():
    """A block that swallowed its interruption and then ended normally had run past its limit."""
    with pytest.raises(TooMuchWork, match="took more than 0.1 s"):
        with time_limit(0.1, "a block"):
            try:
                spin()
            except TooMuchWork:
                pass


def test_no_limit_and_bad_limits():
    with time_limit(None, "nothing") as limit:
        pass
    assert limit.mode == "off"
    with time_limit(1e9, "beyond setitimer") as limit:
        pass
    assert limit.mode == "off"
    for bad in (0, -1, float("nan")):
        with pytest.raises(ValueError):
            time_limit(bad, "x")


def _in_thread(fn):
    outcome: dict = {}

    def run():
        try:
            outcome["result"] = fn()
        except BaseException as exc:  # noqa: BLE001 -- what the worker thread saw
            outcome["error"] = exc

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(10)
    assert not worker.is_alive(), "the limit did not stop the block off the main thread"
    return outcome


def _own_lines():
    with time_limit(0.2, "own lines"):
        x = 0
        while True:
            x += 1


def _called():
    with time_limit(0.2, "called"):
        spin()


def _nested():
    with time_limit(0.3, "outer"):
        with time_limit(5, "inner"):
            spin()


def _one_long_call():
    with time_limit(0.1, "a sleep"):
        time.sleep(0.4)


def _swallowing_loop():
    with time_limit(0.2, "swallowing loop", error=Stop, repeat=0.1):
        while True:
            try:
                spin()
            except Exception:
                pass


@pytest.mark.parametrize("block, error, message", [
    (_own_lines, TooMuchWork, "own lines took more than 0.2 s"),  # was never stopped
    (_called, TooMuchWork, "called took more than 0.2 s"),
    (_nested, TooMuchWork, "outer took more than 0.3 s"),  # the outer waited for the inner
    (_one_long_call, TooMuchWork, "a sleep took more than 0.1 s"),  # was a silent pass
    (_swallowing_loop, Stop, "swallowing loop took more than 0.2 s"),
])
def test_off_the_main_thread_a_trace_function_stands_in_for_the_alarm(host_alarm, block, error, message):
    """signal.signal raises ValueError off the main thread: the limit traces the thread instead,
    leaves SIGALRM alone, stops loops in the block's own lines and in what it calls, checks an
    enclosing limit too, and a block stuck in one C call raises when that call returns."""
    handler, previous = signal.getsignal(signal.SIGALRM), sys.gettrace()
    t0 = time.monotonic()
    outcome = _in_thread(block)
    assert isinstance(outcome.get("error"), error) and str(outcome["error"]) == message, outcome
    assert time.monotonic() - t0 < 2.0
    assert signal.getsignal(signal.SIGALRM) is handler and not host_alarm
    assert sys.gettrace() is previous


def test_off_the_main_thread_the_tracer_found_is_put_back():
    def tracer_put_back():
        mine = lambda *a: None
        sys.settrace(mine)
        try:
            with time_limit(0.2, "quick") as limit:
                sum(range(10))
            return limit.mode, sys.gettrace() is mine, sys._getframe().f_trace is None
        finally:
            sys.settrace(None)

    assert _in_thread(tracer_put_back) == {"result": ("trace", True, True)}


def test_check_generator_off_the_main_thread_is_bounded(fixture_base):
    """From a worker thread (a server calling the Python API) the timeout did nothing: a loop
    that never returned hung that thread for good."""
    from harness.generator_check import check_generator

    def stubborn(ids, n):
        while True:
            try:
                spin()
            except Exception:
                pass

    t0 = time.monotonic()
    outcome = _in_thread(lambda: check_generator(stubborn, fixture_base, ["hi"], max_tokens=2, timeout=0.3))
    assert isinstance(outcome.get("error"), HarnessError), outcome
    assert "did not return within 0.3 s" in str(outcome["error"])
    assert time.monotonic() - t0 < 5


HARD_EXIT = """
import sys, threading, time
from harness.bounded import time_limit

class Stop(BaseException):
    pass

def work():  # each interruption lands in here, inside the caller's `try`
    while True:
        time.sleep(30) if sys.argv[1] != "busy" else sum(range(10**4))

def stuck():
    with time_limit(0.2, "stuck", error=Stop, repeat=0.1, last_words="harness: error: gave up",
                    grace=0.3, exit_code=2):
        while True:
            try:
                work()
            except BaseException:
                pass

if sys.argv[2] == "thread":
    worker = threading.Thread(target=stuck)
    worker.start()
    worker.join()
else:
    stuck()
print("not reached")
"""


@pytest.mark.parametrize("where", ["main", "thread"])
@pytest.mark.parametrize("loop", ["sleep", "busy"])
def test_hard_exit_ends_a_loop_that_refuses_to_stop(tmp_path, where, loop):
    """A loop that swallows every interruption, on the main thread or another (where only the
    watchdog can reach a thread sleeping in C), is ended `grace` s after the deadline: exit 2
    and the last words alone on stderr."""
    script = tmp_path / "stuck.py"
    script.write_text(HARD_EXIT)
    t0 = time.monotonic()
    done = subprocess.run([sys.executable, str(script), loop, where], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})
    elapsed = time.monotonic() - t0
    assert done.returncode == 2, done.stderr
    assert done.stderr == "harness: error: gave up\n" and "not reached" not in done.stdout
    assert elapsed < 20, elapsed
