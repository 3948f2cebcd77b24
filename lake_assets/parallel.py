"""Fan independent per-partition work out over the cores (this process plus spawned workers), results in input order.

A run that covers many partitions (strategies, instruments) spends its time in compute that shares nothing between
partitions; on a 2-core machine a second process halves it. Workers are spawned (never forked: a Dagster run holds
threads and open sqlite handles) and inherit the environment (lake root, numba cache). A spawned worker would
normally re-import the parent's `__main__` (re-running an unguarded script or notebook cell); tasks are module-level
functions of this package, so the main module is hidden while workers start. `QLAKE_WORKERS=1` runs everything in
this process, as does a single item.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from typing import TypeVar

__all__ = ["process_map", "worker_count"]

T = TypeVar("T")
R = TypeVar("R")


def worker_count(n_items: int) -> int:
    """Workers for `n_items` tasks: `QLAKE_WORKERS` (default: the cores this process may use), at most n_items."""
    raw = os.environ.get("QLAKE_WORKERS")
    if raw is not None:
        try:
            wanted = int(raw)
        except ValueError as exc:
            raise ValueError(f"QLAKE_WORKERS must be a whole number, got {raw!r}") from exc
        if wanted < 1:
            raise ValueError(f"QLAKE_WORKERS must be at least 1, got {wanted}")
    else:
        wanted = _cores()
    return max(1, min(wanted, n_items))


def _cores() -> int:
    """Cores this process may run on (its affinity mask, which a container's CPU set narrows)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _init_worker(threads_per_worker: int) -> None:
    # set before the task unpickles (and so imports polars/numba): workers share the cores rather than oversubscribe
    os.environ["POLARS_MAX_THREADS"] = str(threads_per_worker)
    os.environ["NUMBA_NUM_THREADS"] = str(threads_per_worker)


@contextmanager
def _main_module_hidden() -> Iterator[None]:
    """While workers are spawned, give them nothing of `__main__` to re-import (see the module docstring)."""
    main = sys.modules.get("__main__")
    saved = {k: getattr(main, k) for k in ("__file__", "__spec__") if hasattr(main, k)}
    try:
        for k in saved:
            if k == "__spec__":
                main.__spec__ = None  # type: ignore[union-attr]
            else:
                delattr(main, k)
        yield
    finally:
        for k, v in saved.items():
            setattr(main, k, v)


def process_map(fn: Callable[[T], R], items: Sequence[T], *, workers: int | None = None) -> list[R]:
    """[fn(x) for x in items] on `workers` lanes: this process plus workers - 1 spawned processes.

    This process takes tasks too (it would otherwise sit idle holding its memory while the workers hold theirs):
    workers work from the front of the list, this process from the back, so long and short tasks balance. `fn` must be a
    module-level function and items/results picklable. An exception in a task is raised here, as in the serial loop.
    """
    n = worker_count(len(items)) if workers is None else max(1, min(workers, len(items)))
    if n <= 1:
        return [fn(x) for x in items]
    cores = _cores()
    results: dict[int, R] = {}
    with ProcessPoolExecutor(
        max_workers=n - 1,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_init_worker,
        initargs=(max(1, cores // n),),
    ) as pool:
        with _main_module_hidden():  # submitting starts the worker processes
            futures = [pool.submit(fn, x) for x in items]
        try:
            # workers take tasks from the front; this process takes them from the back, while they are unclaimed
            for i in range(len(items) - 1, -1, -1):
                if futures[i].cancel():
                    results[i] = fn(items[i])
            for i, fut in enumerate(futures):
                if i not in results:
                    results[i] = fut.result()
        except BaseException:
            for fut in futures:
                fut.cancel()
            raise
    return [results[i] for i in range(len(items))]
