"""The two kinds of failure the suite distinguishes.

A user's mistake (a bad manifest, a broken initdata string) must be reported as such,
naming the culprit, with exit status 2; a system under test that misbehaves or cannot be
reached is a failure of the scenario, not of the suite.
"""


class ConformanceInputError(ValueError):
    """Bad input from the user; the message names the culprit (file, pod, container, field)."""


class TargetError(RuntimeError):
    """A system under test failed or could not be reached; the message says why."""


class ReportWriteError(RuntimeError):
    """The result files could not be written (a full disk, a quota); the previous ones are untouched."""
