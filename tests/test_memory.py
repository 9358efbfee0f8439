"""infra/memory.py: each phase's seconds and peak memory, the peak reset at every phase's start."""
import time

import torch

from infra.memory import Phases


def test_each_phase_has_its_own_peak_and_time():
    phases = Phases("cpu")
    phases.begin("big")
    block = torch.ones(2 ** 27)  # 512 MiB, touched
    del block
    phases.begin("small")  # the peak resets: a phase after a big one reports its own, lower peak
    time.sleep(0.05)
    record = phases.take()
    assert set(record) == {"big_time", "small_time", "big_peak_mb", "small_peak_mb"}
    assert record["small_time"] >= 0.05 and record["big_time"] > 0
    assert record["big_peak_mb"] > record["small_peak_mb"] + 400
    assert phases.overall_peak_mb() >= record["big_peak_mb"]  # kept across the reset
    assert phases.take() == {}  # a take starts the next step's record


def test_a_phase_begun_twice_in_a_step_adds_its_seconds():
    phases = Phases("cpu")
    for _ in range(2):
        phases.begin("a")
        time.sleep(0.02)
        phases.begin("b")
    assert phases.take()["a_time"] >= 0.04
