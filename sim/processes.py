"""Stopping the processes the suite starts (servers, the control plane), as a kubelet would."""

from __future__ import annotations

import ctypes
import signal
import subprocess
from typing import Any

__all__ = ["Process", "die_with_parent", "terminate"]


#: A started child process: ``subprocess.Popen`` or plumbum's ``popen()`` (typed ``Any``:
#: plumbum's stubs declare its ``wait()`` without the timeout it accepts at run time).
Process = Any


def terminate(process: Process, timeout: float) -> int:
    """SIGTERM; SIGKILL if the process is still there after ``timeout`` seconds. Its exit status."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return int(process.returncode or 0)


def die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """``preexec_fn`` of a child that must not outlive the suite: PR_SET_PDEATHSIG, so the
    kernel sends it SIGKILL when the process that started it dies (killed half-way included)."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGKILL)
