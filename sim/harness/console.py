"""The console of ``peerpods-conformance run``: the run as Gherkin, not as pytest's dots.

Cucumber's and Ginkgo's reporters show what is being checked; so does this one. It replaces
pytest's terminal reporter for the run (a subclass of :class:`pytest.TerminalReporter`, so
plugins that write through the reporter keep working), and shows:

* one line per feature when its first scenario ends, then one line per scenario: a counter
  (``[ 12/117]``), the outcome, the scenario's name, the not-applicable reason in short, and
  its duration;
* for a failure, the failing Gherkin step and the assertion's message in a few lines; pytest's
  traceback only with ``-v``;
* at the end, one line of counts (the verdict follows it, printed by the run).

No pytest header, rootdir or staging path. Colour only on a terminal, never with ``NO_COLOR``
(pytest's terminal writer decides, ``--color`` overrides). ``-q`` leaves out the passed and
not-applicable lines. The same text, without colour, can be copied to a log file (the results
bundle's console log).
"""

from __future__ import annotations

import sys
import textwrap
import time
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

import pytest

from sim.harness.catalogue import load_catalogue
from sim.harness.report.plain import plain, short_reason
from sim.harness.report.results import (
    FAILED,
    NOT_APPLICABLE,
    NOT_RUN,
    OUTCOMES,
    PASSED,
    ResultRecorder,
    ScenarioResult,
)

#: The word and colour of each outcome, all of one width.
LABELS: dict[str, tuple[str, dict[str, bool]]] = {
    PASSED: ("PASS", {"green": True}),
    FAILED: ("FAIL", {"red": True, "bold": True}),
    NOT_APPLICABLE: ("N/A ", {"yellow": True}),
    NOT_RUN: ("SKIP", {"yellow": True}),
}
#: At most this many lines of a failure's message are shown (-v shows the traceback).
FAILURE_LINES = 6


@dataclass
class _Item:
    """What the console knows about one test item from pytest's own reports (xdist-safe)."""

    duration: float = 0.0
    failed: list[pytest.TestReport] = field(default_factory=list)
    skipped: bool = False


class Tee:
    """A text stream that writes to the terminal and, without colour, to a log file."""

    def __init__(self, terminal: IO[str], log: IO[str] | None) -> None:
        self.terminal = terminal
        self.log = log

    def write(self, text: str) -> int:
        if self.log is not None:
            self.log.write(plain(text))
        return self.terminal.write(text)

    def flush(self) -> None:
        self.terminal.flush()
        if self.log is not None:
            self.log.flush()

    def isatty(self) -> bool:
        return self.terminal.isatty()

    def fileno(self) -> int:
        return self.terminal.fileno()

    @property
    def encoding(self) -> str:
        return getattr(self.terminal, "encoding", "utf-8") or "utf-8"


# pytest marks TerminalReporter @final for type checkers only; subclassing it keeps every plugin that
# writes through "terminalreporter" (write_line, section, stats) working, and only its hooks change.
class ConformanceConsole(pytest.TerminalReporter):  # type: ignore[misc]
    """pytest's terminal reporter, speaking Gherkin (see the module docstring)."""

    def __init__(
        self, config: pytest.Config, recorder: ResultRecorder, target: str, file: Any = None
    ) -> None:
        super().__init__(config, file)
        self._terminal: IO[str] = file.terminal if isinstance(file, Tee) else (file or sys.stdout)
        self._live = bool(self.isatty())
        self.recorder = recorder
        self.target = target
        self._items: dict[str, _Item] = {}
        self._done = 0
        self._total = 0
        self._feature: str | None = None
        self._started = time.monotonic()
        self._interrupted = False
        self._counts: dict[str, int] = dict.fromkeys(OUTCOMES, 0)
        self._should = {r.id for r in load_catalogue().requirements if r.level == "SHOULD"}

    # -- what pytest's reporter would print, and this one does not -------------------------
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        self._session = session  # what the inherited helpers read
        self._started = time.monotonic()

    def pytest_deselected(self, items: Sequence[pytest.Item]) -> None:
        self.stats.setdefault("deselected", []).extend(items)

    def pytest_collection(self) -> None:
        return None

    def report_collect(self, final: bool = False) -> None:
        return None

    def pytest_runtest_logstart(self, nodeid: str, location: tuple[str, int | None, str]) -> None:
        """On a terminal, the scenario now running (a long target's scenarios take minutes)."""
        if not self._live or self.config.get_verbosity() < 0:
            return
        label = self.recorder.selected.get(nodeid, nodeid.split("::")[-1])
        _, sep, scenario = label.partition(": ")
        counter = f"[{self._done + 1:>{len(str(self._total))}}/{self._total}]"
        text = f"  {counter} running: {scenario if sep else label}"
        width = max(self._tw.fullwidth - 1, 20)
        self._live_write("\r" + text[:width].ljust(width))

    def _clear_live(self) -> None:
        if self._live:
            self._live_write("\r" + " " * max(self._tw.fullwidth - 1, 20) + "\r")

    def _live_write(self, text: str) -> None:
        """Straight to the terminal: the console log keeps only the lasting lines."""
        self._terminal.write(text)
        self._terminal.flush()

    def pytest_keyboard_interrupt(self, excinfo: pytest.ExceptionInfo[BaseException]) -> None:
        self._interrupted = True

    def pytest_unconfigure(self) -> None:
        return None

    # -- collection ----------------------------------------------------------------------------
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self._total = len(session.items)
        deselected = len(self.stats.get("deselected", []))
        extra = f" ({deselected} deselected)" if deselected else ""
        self.write_line(f"{len(session.items)} scenarios on target {self.target}{extra}", bold=True)

    # -- each scenario -----------------------------------------------------------------------
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        category, _, _ = self.config.hook.pytest_report_teststatus(report=report, config=self.config)
        self.stats.setdefault(category, []).append(report)
        item = self._items.setdefault(report.nodeid, _Item())
        item.duration += report.duration
        if report.failed:
            item.failed.append(report)
        if report.skipped:
            item.skipped = True

    def pytest_runtest_logfinish(self, nodeid: str, location: tuple[str, int | None, str]) -> None:
        self._clear_live()
        self._done += 1
        result = self.recorder.results.get(nodeid)
        item = self._items.get(nodeid, _Item())
        outcome = result.outcome if result is not None else self._outcome(item)
        self._counts[outcome] = self._counts.get(outcome, 0) + 1
        if result is not None and result.feature != self._feature:
            self._feature = result.feature
            self.ensure_newline()
            self.write_line(f"Feature: {result.feature}", bold=True)
        quiet = self.config.get_verbosity() < 0
        if quiet and outcome != FAILED:
            return
        counter = f"[{self._done:>{len(str(self._total))}}/{self._total}]"
        word, markup = LABELS.get(outcome, (outcome, {}))
        name = result.scenario if result is not None else nodeid.split("::")[-1]
        self.write(f"  {counter} ")
        self.write(word, **markup)
        self.write(f" {name}")
        if outcome in (NOT_APPLICABLE, NOT_RUN):
            reason = short_reason(result.reason if result is not None else None)
            self.write(f" - {reason}" if reason else "", yellow=True)
        self.write(f" ({item.duration:.2f}s)")
        if (
            outcome == FAILED
            and result is not None
            and result.requirements
            and set(result.requirements) <= self._should
        ):
            self.write(f" [advisory: {', '.join(result.requirements)} SHOULD, not a verdict]", yellow=True)
        self.write("\n", flush=True)
        if outcome == FAILED:
            self._write_failure(result, item)

    @staticmethod
    def _outcome(item: _Item) -> str:
        if item.failed:
            return FAILED
        return NOT_APPLICABLE if item.skipped else PASSED

    def _write_failure(self, result: ScenarioResult | None, item: _Item) -> None:
        """The failing Gherkin step and the message, in a few lines."""
        indent = " " * 6
        width = max(self._tw.fullwidth - len(indent) - 1, 40)
        step = next((s for s in result.steps if s.status == FAILED), None) if result is not None else None
        if step is not None:
            self.write_line(f"{indent}{step.keyword} {step.name}", bold=True)
        message = (step.error if step is not None else None) or (result.reason if result else None) or ""
        if not message and item.failed:
            message = str(getattr(item.failed[0].longrepr, "reprcrash", "") or item.failed[0].longrepr)
        lines = [
            wrapped
            for paragraph in plain(message).strip().splitlines()
            for wrapped in (textwrap.wrap(paragraph, width, break_on_hyphens=False) or [""])
        ]
        for line in lines[:FAILURE_LINES]:
            self.write_line(f"{indent}{line}", red=True)
        if len(lines) > FAILURE_LINES or self.config.get_verbosity() <= 0:
            more = f"{len(lines) - FAILURE_LINES} more line(s); " if len(lines) > FAILURE_LINES else ""
            self.write_line(f"{indent}({more}-v shows pytest's traceback)")

    # -- the end -----------------------------------------------------------------------------
    @pytest.hookimpl(wrapper=True)
    def pytest_sessionfinish(
        self, session: pytest.Session, exitstatus: int | pytest.ExitCode
    ) -> Generator[None]:
        result = yield
        self._closing_lines(exitstatus)
        return result

    def _closing_lines(self, exitstatus: int | pytest.ExitCode) -> None:
        self._clear_live()
        self.ensure_newline()
        if exitstatus == pytest.ExitCode.USAGE_ERROR and not self._done:
            return  # pytest says what was wrong with its arguments; there is nothing to count
        for report in self.stats.get("error", []):
            if isinstance(report, pytest.CollectReport):
                self.write_line(f"cannot collect {report.nodeid or 'the features'}:", red=True, bold=True)
                report.toterminal(self._tw)
        if self.config.get_verbosity() > 0:
            self._tracebacks()
        elapsed = time.monotonic() - self._started
        total = self._total or self._done
        parts: list[tuple[str, dict[str, bool]]] = []
        for outcome in OUTCOMES:
            count = self._counts.get(outcome, 0)
            if count or outcome in (PASSED, FAILED):
                markup = LABELS[outcome][1] if count else {}
                parts.append((f"{count} {outcome}", markup))
        lead = (
            f"interrupted after {self._done} of {total} scenarios"
            if self._interrupted
            else (f"{self._done} scenarios")
        )
        self.write(f"{lead} in {elapsed:.1f}s: ", bold=True, yellow=self._interrupted)
        for index, (text, markup) in enumerate(parts):
            self.write(("" if index == 0 else ", ") + text, **markup)
        self.write("\n", flush=True)

    def _tracebacks(self) -> None:
        reports: Sequence[pytest.TestReport] = [r for item in self._items.values() for r in item.failed]
        for report in reports:
            result = self.recorder.results.get(report.nodeid)
            title = result.scenario if result is not None else report.nodeid
            self.write_sep("-", f"traceback: {title} ({report.when})")
            report.toterminal(self._tw)


class ConsolePlugin:
    """pytest plugin: replaces pytest's terminal reporter by :class:`ConformanceConsole`."""

    def __init__(self, recorder: ResultRecorder, target: str, log: IO[str] | None = None) -> None:
        self.recorder = recorder
        self.target = target
        self.log = log

    @pytest.hookimpl(trylast=True)
    def pytest_configure(self, config: pytest.Config) -> None:
        standard = config.pluginmanager.get_plugin("terminalreporter")
        if standard is None:  # -p no:terminal: no console at all
            return
        config.pluginmanager.unregister(standard, "terminalreporter")
        console = ConformanceConsole(config, self.recorder, self.target, Tee(sys.stdout, self.log))
        config.pluginmanager.register(console, "terminalreporter")
