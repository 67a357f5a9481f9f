"""Run the command as if some Python packages were not installed.

``python -m tests.without_extras pycdlib,libvirt run --target lpar`` makes every import of
those packages (and of their sub-modules) fail as an absent package's import fails, then runs
``peerpods-conformance`` with the remaining arguments.
"""

from __future__ import annotations

import importlib.abc
import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType


class Absent(importlib.abc.MetaPathFinder):
    """A finder that says the named top-level packages do not exist."""

    def __init__(self, names: set[str]) -> None:
        self.names = names

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname.split(".")[0] in self.names:
            raise ModuleNotFoundError(f"No module named {fullname!r}", name=fullname)
        return None


if __name__ == "__main__":
    sys.meta_path.insert(0, Absent(set(sys.argv[1].split(","))))
    from sim.harness.cli import main

    sys.exit(main(sys.argv[2:]))
