"""parallel.together: results in order; the first step's failure wins, after every step ended."""

import threading
import time

import pytest

from tasks.parallel import together


def test_results_come_in_order_and_steps_overlap():
    started = threading.Barrier(2, timeout=5)  # each waits for the other: only concurrent steps pass

    def step(value):
        started.wait()
        return value

    assert together(lambda: step("a"), lambda: step("b")) == ["a", "b"]


def test_the_first_failure_in_argument_order_is_raised_once_all_ended():
    ended = []

    def slow_fail():
        time.sleep(0.05)
        ended.append("slow")
        raise ValueError("first")

    def fast_fail():
        raise KeyError("second")

    with pytest.raises(ValueError, match="first"):
        together(slow_fail, fast_fail)
    assert ended == ["slow"]
