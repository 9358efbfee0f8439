"""infra/memory.py: each phase's seconds and peak memory, the peak reset at every phase's start."""
import os
import time

import pytest
import torch

from infra import memory
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


def read_rss_mb():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:")) / 1024


def test_freed_heap_memory_is_handed_back_only_above_the_threshold():
    if memory.heap_free_mb() is None:
        pytest.skip("malloc is not glibc's (no mallinfo2): release_freed_memory trims whenever it can")
    blocks = [torch.ones(2 ** 14) for _ in range(6000)]  # 64 KiB each, from malloc's heap: 375 MiB, touched
    kept = blocks[::16]  # every 16th stays allocated: the freed ones between them cannot shrink the heap
    del blocks
    assert memory.heap_free_mb() > 300
    before = read_rss_mb()
    assert not memory.release_freed_memory(above_mb=10 ** 6)  # below the threshold: kept
    assert read_rss_mb() > before - 50
    assert memory.release_freed_memory(above_mb=256)
    assert read_rss_mb() < before - 250  # the free pages went back to the operating system
    del kept


HELD_AFTER_FREEING = """
import sys, torch
from infra import memory
from tests.test_memory import read_rss_mb
fixed = memory.fix_mmap_threshold() if sys.argv[1] == "fix" else False
torch.ones(2 ** 19); torch.ones(2 ** 19)  # a freed 2 MiB mapping: glibc's default then raises its threshold
blocks = [torch.ones(2 ** 19) for _ in range(200)]  # 2 MiB each, touched: 400 MiB
kept = blocks[1::2]
before = read_rss_mb()
del blocks
print(fixed, before - read_rss_mb())  # MiB handed back by freeing half of them
"""


def test_a_fixed_mmap_threshold_hands_freed_activations_back():
    import subprocess
    import sys
    if memory.heap_free_mb() is None:
        pytest.skip("malloc is not glibc's: mallopt's M_MMAP_THRESHOLD does not apply")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {key: value for key, value in os.environ.items() if key != "MALLOC_MMAP_THRESHOLD_"}

    def freed_mb(how, **extra):
        out = subprocess.run([sys.executable, "-c", HELD_AFTER_FREEING, how], cwd=root, env={**env, **extra},
                             capture_output=True, text=True, check=True).stdout.split()
        return out[0] == "True", float(out[1])

    fixed, freed = freed_mb("fix")
    assert fixed and freed > 150  # each freed 2 MiB block was its own mapping: ~200 MiB back
    assert freed_mb("default")[1] < 50  # glibc's raised threshold: they came from the heap, which keeps them
    assert freed_mb("fix", MALLOC_MMAP_THRESHOLD_="131072")[0] is False  # the environment's setting stands
