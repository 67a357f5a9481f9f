"""Reading the pod VM's own report from its console.

The guest agent prints exactly one line starting with :data:`REPORT_PREFIX` followed by
the GuestReport JSON; kernel messages around it are ignored. The sclp console may wrap or
prefix lines with carriage returns, so the reader is lenient about whitespace, strict
about the JSON.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sim.errors import TargetError

REPORT_PREFIX = "PEERPODS-GUEST-REPORT "


def find_report(console_text: str) -> dict[str, Any] | None:
    """The report in a console transcript, or None while the guest has not printed it."""
    for raw in console_text.splitlines():
        line = raw.strip("\r\n\t \0")
        start = line.find(REPORT_PREFIX)
        if start < 0:
            continue
        payload = line[start + len(REPORT_PREFIX) :]
        try:
            report = json.loads(payload)
        except json.JSONDecodeError:
            return None  # the line is still being written; poll again
        if not isinstance(report, dict):
            raise TargetError(f"guest report is not a JSON object: {payload[:200]!r}")
        return report
    return None


def wait_for_report(
    console: Path,
    *,
    timeout: float,
    alive: Callable[[], bool] | None = None,
    interval: float = 0.05,
) -> dict[str, Any]:
    """Poll ``console`` until the report appears; TargetError naming the timeout otherwise.

    ``alive`` (a callable returning bool) lets a guest that powered off without a report
    fail at once instead of after the whole timeout.
    """
    deadline = time.monotonic() + timeout
    while True:
        text = console.read_text(errors="replace") if console.exists() else ""
        report = find_report(text)
        if report is not None:
            return report
        if alive is not None and not alive():
            text = console.read_text(errors="replace") if console.exists() else ""
            report = find_report(text)
            if report is not None:
                return report
            raise TargetError(f"pod VM stopped without a report; console tail: {_tail(text)!r}")
        if time.monotonic() > deadline:
            raise TargetError(f"pod VM did not report within {timeout:g} s; console tail: {_tail(text)!r}")
        time.sleep(interval)


def tail_of(console: Path) -> str:
    """The console's last characters so far (what an error about the guest quotes)."""
    return _tail(console.read_text(errors="replace") if console.exists() else "")


def _tail(text: str, size: int = 300) -> str:
    return text[-size:]
