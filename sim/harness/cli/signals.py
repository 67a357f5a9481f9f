"""SIGINT and SIGTERM: both stop the command cleanly, and its exit status says which it was.

The handlers are installed before anything else is imported, so a signal at any moment,
start-up included, ends as ``KeyboardInterrupt`` (pytest stops the run and tears the target
down), then as the one line "interrupted" and the exit status 128 + the signal's number:
130 for SIGINT, 143 for SIGTERM. Only the first signal interrupts; later ones, arriving
while the command cleans up, are ignored so that the clean-up finishes.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

_received: list[int] = []
_notes: list[str] = []


def _handler(signum: int, frame: FrameType | None) -> None:
    if _received:
        return
    _received.append(signum)
    raise KeyboardInterrupt


@contextmanager
def installed() -> Iterator[None]:
    """Route SIGINT and SIGTERM through :func:`_handler` (main thread only), then restore them."""
    _received.clear()
    _notes.clear()
    previous: dict[int, Callable[[int, FrameType | None], Any] | int | None] = {
        number: signal.signal(number, _handler) for number in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler if handler is not None else signal.SIG_DFL)


def note(text: str) -> None:
    """Add to the "interrupted" line (what the interrupted command left as it was)."""
    _notes.append(text)


def message() -> str:
    """The one line an interrupted command prints."""
    return "; ".join(["interrupted", *_notes])


def received() -> int | None:
    """The signal that interrupted the command, if one did."""
    return _received[0] if _received else None


def exit_status() -> int:
    """128 + the signal's number; 130 (SIGINT) for a KeyboardInterrupt raised otherwise."""
    return 128 + (_received[0] if _received else int(signal.SIGINT))
