"""Stopping the processes the suite starts (servers, the control plane), as a kubelet would."""

from __future__ import annotations

import signal
import subprocess
from typing import Any

__all__ = ["Process", "terminate"]


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
