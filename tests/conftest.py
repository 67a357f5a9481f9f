"""Under CI (``CI=true``, as ``.ci/run`` sets it) a skipped test fails the session.

Every test skips only for a missing host part (Chromium, cpio, Go, libvirt, an s390x image),
and ``.ci/setup-host`` installs them all, so in CI a skip means a test silently did not run.
Scenarios reported not applicable are not tests of this folder and are not affected.
"""

from __future__ import annotations

import os

import pytest


def _skipped_here(session: pytest.Session) -> list[str]:
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        return []
    reports = reporter.stats.get("skipped", [])
    return [
        f"{report.nodeid}: {report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr}"
        for report in reports
        if report.nodeid.startswith("tests/")
    ]


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if os.environ.get("CI") != "true" or exitstatus != 0:
        return
    skipped = _skipped_here(session)
    if skipped:
        print(
            "\nCI: these tests skipped, so they did not run (a host part is missing):", *skipped, sep="\n  "
        )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
