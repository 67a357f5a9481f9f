"""A pytest plugin for tests of clean result files: the first scenario prints and fails in colour."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

RED, RESET = "\x1b[91m", "\x1b[0m"
_failed: list[str] = []


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    result = yield
    if not _failed:
        _failed.append(item.nodeid)
        print(f"{RED}coloured output{RESET}")
        print(f"{RED}coloured error output{RESET}", file=sys.stderr)
        raise AssertionError(f"{RED}expected{RESET} 1, {RED}got{RESET} 2")
    return result
