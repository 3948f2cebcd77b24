"""glibc malloc settings for processes that stream large numpy buffers (feature columns, record tables, frames).

By default glibc gives a freed block above its mmap threshold (128 KB, raised dynamically up to 32 MB) straight back
to the kernel and trims the heap once 128 KB lie free at its top, so the next array of that size starts on fresh
pages. Here a first touch costs about 2 ms per MB (80 MB of fresh memory: 160 ms; the same write into memory the
process already holds: 13 ms), and a feature or backtest run frees and re-allocates hundreds of such arrays. With the
thresholds below, freed arrays stay in the heap for the next one: `qlake demo` (cold) ran in 104-106 s instead of
123 s, and its peak memory summed over the process tree stayed where it was (1.78-1.83 GB against 1.81 GB): what is
kept is reused, not added to.

`tune_malloc()` applies the settings to this process (`mallopt`) and puts them in the environment, where glibc reads
them at the start of every child process (the kernel warm-up, spawned workers, Dagster's run subprocesses). Values
already in the environment win; `QLAKE_MALLOC_TUNING=0` leaves malloc alone. A no-op off glibc.
"""

from __future__ import annotations

import ctypes
import os

__all__ = ["SETTINGS", "tune_malloc"]

# environment variable -> (mallopt parameter, value); glibc's malloc.h: M_TRIM_THRESHOLD -1, M_TOP_PAD -2,
# M_MMAP_THRESHOLD -3 (32 MB is the largest threshold glibc accepts on 64-bit)
SETTINGS: dict[str, tuple[int, int]] = {
    "MALLOC_MMAP_THRESHOLD_": (-3, 32 * 2**20),
    "MALLOC_TRIM_THRESHOLD_": (-1, 256 * 2**20),
    "MALLOC_TOP_PAD_": (-2, 64 * 2**20),
}


def tune_malloc() -> bool:
    """Apply SETTINGS to this process and its future children; True when glibc took them."""
    if os.environ.get("QLAKE_MALLOC_TUNING", "1") == "0":
        return False
    for name, (_, value) in SETTINGS.items():
        os.environ.setdefault(name, str(value))
    try:  # the process's own symbols (no `find_library`, which runs ldconfig at every import of the definitions)
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to tune
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    ok = True
    for name, (param, _) in SETTINGS.items():
        try:
            value = int(os.environ[name])
        except ValueError:
            continue  # a malformed value set by the user: glibc ignores it too
        ok &= mallopt(param, value) == 1
    return ok
