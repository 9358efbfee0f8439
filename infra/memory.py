"""Seconds and peak memory of the phases of an RL step (sampling, scoring, update), for metrics.jsonl.

    phases = Phases(device)
    phases.begin("generation")   # ... sample ...
    phases.begin("update")       # ... update (the previous phase ends here) ...
    phases.take()                # {"generation_time": s, "generation_peak_mb": MiB, "update_time": ..., ...}

The peak of a phase is the most memory held at any moment during it, not what it added:
  - CUDA: the most torch's allocator had allocated (torch.cuda.max_memory_allocated, reset at the phase's start);
  - CPU (Linux): the process's peak resident set, VmHWM of /proc/self/status, which writing "5" to
    /proc/self/clear_refs resets to the current resident set at the phase's start. It counts everything the
    process holds (Python, libraries, weights), as the operating system sees it. Where /proc cannot be reset
    (another OS), the process's peak since it started (getrusage) is reported instead.
The reset also lowers getrusage's ru_maxrss of this process, so `overall_peak_mb` keeps the maximum itself.

On CPU each phase first hands the memory torch has freed back to the operating system (`release_freed_memory`)
when malloc's heaps hold more than TRIM_ABOVE_MB of it: glibc's malloc keeps freed blocks of up to 32 MiB in its
heaps for reuse, so without it the update's freed activations stay resident through the next phases and the
process holds GBs more than it uses (at the Qwen2.5-0.5B shape, 2 prompts x 8 rollouts: about 1.5 GiB). Below
that it keeps them: pages handed back are faulted in again by the next allocations, which cost the tiny model's
step about 6-30% when every phase trimmed. And train.py on CPU fixes glibc's mmap threshold at 1 MiB
(`fix_mmap_threshold`): at the 0.5B shape the update's peak is then 11.6 GiB rather than 13.1 GiB, within 2% of
the live tensors', at the same speed.
"""
import ctypes
import ctypes.util
import os
import resource
import time

import torch

MIB = 2 ** 20
TRIM_ABOVE_MB = 256  # free memory in malloc's heaps worth handing back at a phase's start
CPU_MMAP_THRESHOLD = MIB  # train.py on CPU: allocations this large are mappings of their own (fix_mmap_threshold)
M_MMAP_THRESHOLD = -3  # glibc's malloc.h


def _cpu_peak_mb():
    try:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024  # kB
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _reset_cpu_peak():
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")  # "5": reset the peak resident set to the current one (proc(5))
    except OSError:
        pass


def _libc():
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


class _MallInfo2(ctypes.Structure):  # glibc's struct mallinfo2 (malloc.h): byte counts of malloc's heaps
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]


LIBC = _libc()
if getattr(LIBC, "mallinfo2", None) is not None:
    LIBC.mallinfo2.restype = _MallInfo2


def heap_free_mb():
    """MiB that malloc's heaps hold free (glibc >= 2.33: mallinfo2's fordblks); None where it cannot tell."""
    if getattr(LIBC, "mallinfo2", None) is None:
        return None
    return LIBC.mallinfo2().fordblks / MIB


def fix_mmap_threshold(nbytes=CPU_MMAP_THRESHOLD):
    """glibc's mallopt(M_MMAP_THRESHOLD, nbytes): every allocation of nbytes or more becomes its own mapping, handed
    back to the operating system when it is freed. glibc's default threshold starts at 128 KiB and rises (up to
    32 MiB) whenever such a block is freed, after which activations of a few MiB come from the heaps and stay
    there, fragmented, once freed. Not where MALLOC_MMAP_THRESHOLD_ is set already (the environment decides) or
    malloc is not glibc's. Returns whether it set the threshold."""
    if os.environ.get("MALLOC_MMAP_THRESHOLD_") or getattr(LIBC, "mallopt", None) is None:
        return False
    return bool(LIBC.mallopt(M_MMAP_THRESHOLD, int(nbytes)))


def release_freed_memory(above_mb=0.0):
    """Return the free pages of malloc's heaps to the operating system (glibc's malloc_trim(0)) if they hold more
    than above_mb MiB free (or if that cannot be told); elsewhere nothing. Returns whether it trimmed."""
    trim = getattr(LIBC, "malloc_trim", None)
    free_mb = heap_free_mb()
    if trim is None or (free_mb is not None and free_mb <= above_mb):
        return False
    trim(0)
    return True


class Phases:
    """Seconds and peak memory (MiB) of each named phase, phase after phase: `begin(name)` ends the phase that
    runs (if any) and starts `name`; `take()` ends it and returns what was measured since the last take."""

    def __init__(self, device):
        self.cuda = torch.device(device).type == "cuda"
        self.seconds, self.peak_mb = {}, {}
        self.running, self._start, self._overall_mb = None, 0.0, 0.0

    def _peak(self):
        if self.cuda:
            torch.cuda.synchronize()
            return torch.cuda.max_memory_allocated() / MIB
        return _cpu_peak_mb()

    def end(self):
        if self.running is not None:
            peak = self._peak()
            self.seconds[self.running] = self.seconds.get(self.running, 0.0) + time.perf_counter() - self._start
            self.peak_mb[self.running] = max(self.peak_mb.get(self.running, 0.0), peak)
            self._overall_mb = max(self._overall_mb, peak)
        self.running = None

    def begin(self, name):
        self.end()
        self._overall_mb = max(self._overall_mb, self._peak())
        if self.cuda:
            torch.cuda.reset_peak_memory_stats()
        else:
            release_freed_memory(TRIM_ABOVE_MB)
            _reset_cpu_peak()
        self.running, self._start = name, time.perf_counter()

    def overall_peak_mb(self):
        """The peak over the object's life: every phase's, and what was held between them."""
        return max(self._overall_mb, self._peak())

    def take(self):
        """{NAME_time: s, NAME_peak_mb: MiB} of every phase since the last take (the running one ended)."""
        self.end()
        record = {**{f"{name}_time": value for name, value in self.seconds.items()},
                  **{f"{name}_peak_mb": value for name, value in self.peak_mb.items()}}
        self.seconds, self.peak_mb = {}, {}
        return record
