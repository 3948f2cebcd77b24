"""Whether a process still runs: how temp files, staging folders and runs left by dead writers are told apart from
those of live ones (pids are recorded in their names or tags)."""

from __future__ import annotations

import os


def alive(pid: int) -> bool:
    """True for this process and any other running one (also one we may not signal), False once it has exited."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
