"""What a command needs installed beyond the package itself, and how to say so.

The package's optional extras (pyproject.toml) bring the Python packages some targets and
sub-commands import. A missing one is an install problem, never a verdict: it is reported
as bad input (exit 2), before anything runs, with the ``pip install`` line that fixes it.
"""

from __future__ import annotations

from importlib.util import find_spec

from sim.errors import ConformanceInputError

#: extra -> the top-level modules it brings (as imported, not as published).
EXTRA_MODULES: dict[str, tuple[str, ...]] = {
    "lpar": ("libvirt", "pycdlib"),
    "webhook": ("cryptography", "granian", "rloop", "orjson", "hypothesis", "trustme"),
}

#: target -> (extra, the modules of it the target imports).
TARGET_NEEDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "lpar": ("lpar", ("libvirt", "pycdlib")),
    "adaptor": ("lpar", ("libvirt", "pycdlib")),
    "webhook": ("webhook", ("cryptography",)),
}


class MissingPart(ConformanceInputError):
    """Something to install is missing; the message says what and how to install it."""


def install_hint(extra: str) -> str:
    """The command that installs an extra, from a wheel and in a checkout."""
    return f"pip install 'peerpods-conformance[{extra}]' (in a checkout: pip install -e '.[{extra}]')"


def extra_of(module: str) -> str | None:
    """The extra that brings ``module`` (a dotted name is judged by its top level), if any."""
    top = module.split(".")[0]
    return next((extra for extra, modules in EXTRA_MODULES.items() if top in modules), None)


def missing_part(what: str, module: str) -> MissingPart | None:
    """The error for ``what`` failing on a missing ``module``; None when no extra brings it."""
    extra = extra_of(module)
    if extra is None:
        return None
    return _missing(what, module.split(".")[0], extra)


def _missing(what: str, module: str, extra: str) -> MissingPart:
    hint = install_hint(extra)
    return MissingPart(f"{what} needs the Python package {module!r} (the [{extra}] extra): {hint}")


def require_modules(what: str, extra: str, modules: tuple[str, ...]) -> None:
    """Raise MissingPart naming the first of ``modules`` that is not importable."""
    for module in modules:
        try:
            found = find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            raise _missing(what, module, extra)


def require_target(name: str, libvirt_uri: str | list[str] | None = None) -> None:
    """Check that a target's extra is installed, before the target is built (``libvirt_uri``:
    the LPAR or LPARs it was given, which make the cluster target need libvirt too)."""
    needs = TARGET_NEEDS.get(name)
    if needs is None and name == "cluster" and libvirt_uri:
        needs = TARGET_NEEDS["lpar"]
        name = "cluster --libvirt-uri"
    if needs is not None:
        extra, modules = needs
        require_modules(f"--target {name}", extra, modules)
