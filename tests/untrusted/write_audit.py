"""Record every path Python code opens for writing, creates, renames or removes (PEP 578 audit hooks).

In-process: `with recording() as writes: ...`. For a child process: `python write_audit.py LOG -m module args...`
runs the module as __main__ with the hook installed and writes the recorded paths (JSON) to LOG at exit.
Native writers (polars, duckdb) bypass the hooks; the tests also compare directory snapshots for those.
Imported by path from the tests in this folder (tests/ is not a package).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import runpy
import sys
from collections.abc import Iterator
from pathlib import Path

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
_EVENTS = {"os.mkdir": 1, "os.rename": 2, "os.remove": 1, "os.rmdir": 1, "os.symlink": 2, "os.link": 2,
           "os.truncate": 1, "shutil.copyfile": 2, "shutil.move": 2, "shutil.rmtree": 1}  # fmt: skip
_sinks: list[list[tuple[str, str]]] = []
_installed = False


def _path(value: object) -> str | None:
    if isinstance(value, bytes):
        value = os.fsdecode(value)
    if isinstance(value, str | os.PathLike):
        return os.path.abspath(os.fspath(value))
    return None  # a file descriptor


def _hook(event: str, args: tuple) -> None:
    if not _sinks:
        return
    if event == "open":
        path, mode, flags = (tuple(args) + (None, None, None))[:3]
        writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
            isinstance(flags, int) and bool(flags & _WRITE_FLAGS)
        )
        targets = [path] if writing else []
    elif event in _EVENTS:
        dir_fd = {"os.remove": 1, "os.rmdir": 1, "os.mkdir": 2}.get(event)
        if dir_fd is not None and len(args) > dir_fd and args[dir_fd] is not None and not os.path.isabs(args[0]):
            return  # relative to a directory descriptor (shutil.rmtree's own walk): its `shutil.rmtree` event names it
        targets = list(args[: _EVENTS[event]])
        if event in ("os.rename", "os.symlink", "os.link", "shutil.copyfile", "shutil.move"):
            targets = targets[1:]  # the destination is what gets created
    else:
        return
    for t in targets:
        p = _path(t)
        if p is not None:
            for sink in _sinks:
                sink.append((event, p))


def install() -> None:
    global _installed
    if not _installed:
        sys.addaudithook(_hook)
        _installed = True


@contextlib.contextmanager
def recording() -> Iterator[list[tuple[str, str]]]:
    install()
    sink: list[tuple[str, str]] = []
    _sinks.append(sink)
    try:
        yield sink
    finally:
        _sinks.remove(sink)


def outside(writes: list[tuple[str, str]], allowed: list[Path]) -> list[tuple[str, str]]:
    """The recorded writes not under any allowed root (bytecode caches and /dev/null are always allowed)."""
    roots = [str(Path(a).resolve()) for a in allowed]
    bad = []
    for event, p in writes:
        real = os.path.realpath(p)
        if p == os.devnull or "__pycache__" in Path(p).parts:
            continue
        if any(real == r or real.startswith(r + os.sep) for r in roots):
            continue
        bad.append((event, p))
    return bad


def _main() -> None:
    log, *args = sys.argv[1:]
    is_module = args[0] == "-m"
    target, *rest = args[1:] if is_module else args
    sink: list[tuple[str, str]] = []

    def dump() -> None:
        _sinks.clear()
        Path(log).write_text(json.dumps(sink))

    atexit.register(dump)
    install()
    _sinks.append(sink)
    sys.argv = [target, *rest]
    sys.path.insert(0, os.getcwd())  # the checkout the caller runs in, ahead of any installed copy
    if is_module:
        runpy.run_module(target, run_name="__main__", alter_sys=True)
    else:
        runpy.run_path(target, run_name="__main__")


if __name__ == "__main__":
    _main()
