"""Plain text for the result files: terminal colour and control sequences removed.

A failure message can carry ANSI sequences (a coloured diff, a colouring server's log line),
and pytest's junit.xml writes the escape character as the literal text ``#x1B``. Neither
belongs in a file a CI dashboard or a certifier reads.
"""

from __future__ import annotations

import re

#: CSI sequences (colours, cursor moves) and two-character escapes, raw or as pytest's junit.xml writes ESC.
ANSI = re.compile(r"(?:\x1b|#x1B)(?:\[[0-?]*[ -/]*[@-~]|[@-Z\\-_])")


def plain(text: str) -> str:
    """``text`` without ANSI escape sequences."""
    return ANSI.sub("", text)


def plain_or_none(text: str | None) -> str | None:
    return None if text is None else plain(text)


_NA_PREFIX = re.compile(r"^not applicable(?: on target '[^']*')?: ")


def short_reason(reason: str | None, width: int = 72) -> str:
    """A not-applicable reason in a few words: "needs guest" rather than the whole sentence."""
    text = _NA_PREFIX.sub("", plain(reason or "").strip())
    if text.startswith("needs "):
        text = text.split(" (", 1)[0]  # the capability's meaning is said once, elsewhere
    return text if len(text) <= width else text[: width - 1] + "…"
