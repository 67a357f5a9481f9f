"""Build etcd, kube-apiserver and kube-scheduler once, into a cache keyed by version.

The Go modules that pin them live in ``controlplane/`` of the project: ``kubernetes/``
requires ``k8s.io/kubernetes`` at :data:`KUBERNETES_VERSION` and replaces its staging
modules (``k8s.io/api``, ``k8s.io/apiserver``, ...) by the published releases that match;
``etcd/`` requires ``go.etcd.io/etcd/server/v3`` at :data:`ETCD_VERSION`. The binaries go
to ``~/.cache/peerpods-conformance/k8s/<kubernetes version>-<go.mod hash>/bin`` (override
the root with ``PEERPODS_K8S_CACHE``) and are reused while the same directory exists. A build
writes into a temporary directory renamed into place at the end, so an interrupted build
leaves nothing that looks finished.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from plumbum import ProcessExecutionError, local

from sim.errors import ConformanceInputError
from sim.paths import CONTROLPLANE_DIR

KUBERNETES_VERSION = "v1.37.2"
ETCD_VERSION = "v3.7.3"
MODULES_DIR = CONTROLPLANE_DIR
#: (module directory, Go package, binary name)
PACKAGES: tuple[tuple[str, str, str], ...] = (
    ("etcd", "go.etcd.io/etcd/server/v3", "etcd"),
    ("kubernetes", "k8s.io/kubernetes/cmd/kube-apiserver", "kube-apiserver"),
    ("kubernetes", "k8s.io/kubernetes/cmd/kube-scheduler", "kube-scheduler"),
)
BINARIES = tuple(binary for _, _, binary in PACKAGES)
#: What `make` would stamp into Kubernetes' binaries (a module build otherwise reports v0.0.0-master).
VERSION_LDFLAGS = "".join(
    f" -X k8s.io/component-base/version.{name}={value}"
    for name, value in (
        ("gitVersion", KUBERNETES_VERSION),
        ("gitMajor", KUBERNETES_VERSION[1:].split(".")[0]),
        ("gitMinor", KUBERNETES_VERSION.split(".")[1]),
        ("gitTreeState", "clean"),
    )
)
GO_CANDIDATES = ("/usr/local/go/bin/go",)
LOG_TAIL_LINES = 25


class BuildError(ConformanceInputError):
    """Go is missing or a build failed; the message has the command and its last output lines."""


@dataclass(frozen=True)
class ControlPlaneBinaries:
    """A built control plane: where its binaries are and which versions they are."""

    directory: Path
    kubernetes_version: str
    etcd_version: str

    def path(self, binary: str) -> Path:
        return self.directory / "bin" / binary


def cache_root() -> Path:
    configured = os.environ.get("PEERPODS_K8S_CACHE")
    if configured:
        return Path(configured)
    return Path.home() / ".cache" / "peerpods-conformance" / "k8s"


def modules_hash() -> str:
    """A digest of every file that decides what is built (go.mod, go.sum, tools.go)."""
    digest = hashlib.sha256()
    for path in sorted(MODULES_DIR.rglob("*")):
        if path.is_file() and path.name in ("go.mod", "go.sum", "tools.go"):
            digest.update(str(path.relative_to(MODULES_DIR)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def cache_dir(root: Path | None = None) -> Path:
    return (root or cache_root()) / f"{KUBERNETES_VERSION}-{modules_hash()}"


def find_binaries(root: Path | None = None) -> ControlPlaneBinaries | None:
    """The cached build for the pinned versions, or None when it has not been built here."""
    directory = cache_dir(root)
    if all((directory / "bin" / binary).is_file() for binary in BINARIES):
        return ControlPlaneBinaries(directory, KUBERNETES_VERSION, ETCD_VERSION)
    return None


def find_go() -> str:
    """The Go toolchain: ``$PEERPODS_GO``, /usr/local/go/bin/go, or ``go`` on PATH."""
    configured = os.environ.get("PEERPODS_GO")
    for candidate in ([configured] if configured else []) + list(GO_CANDIDATES):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    on_path = shutil.which("go")
    if on_path:
        return on_path
    raise BuildError(
        "the control plane is built with Go 1.26 or later, and no Go toolchain was found "
        "(looked for $PEERPODS_GO, /usr/local/go/bin/go and go on PATH); install Go from https://go.dev/dl/"
    )


def _tail(text: str, lines: int = LOG_TAIL_LINES) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


class NotBuilt(ConformanceInputError):
    """The control plane is not built and building was refused (``--no-build``)."""


def announcement(target: Path) -> str:
    """What a build says before it starts: what it builds, how long it takes, where it caches."""
    return (
        f"building the control plane once: etcd {ETCD_VERSION}, kube-apiserver and kube-scheduler "
        f"{KUBERNETES_VERSION}, from their Go modules; this takes about 10-25 minutes on 2 cores "
        f"(later runs reuse it); cache: {target}"
    )


def prepare(
    root: Path | None = None,
    *,
    force: bool = False,
    log: Callable[[str], None] = print,
    build: bool = True,
) -> tuple[ControlPlaneBinaries, bool]:
    """The control plane binaries, built when the cache lacks them; returns (binaries, reused).

    ``build=False`` (``--no-build``): a missing build is :class:`NotBuilt` (exit 2), never built.
    """
    found = None if force else find_binaries(root)
    if found is not None:
        log(f"control plane {KUBERNETES_VERSION} (etcd {ETCD_VERSION}) reused from {found.directory}")
        return found, True
    target = cache_dir(root)
    if not build:
        raise NotBuilt(
            f"the control plane ({KUBERNETES_VERSION}) is not built in {target} and --no-build forbids "
            "building it: run `peerpods-conformance cluster prepare` first (10-25 minutes, once)"
        )
    go_path = find_go()
    log(announcement(target))
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".building-{target.name}-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "bin").mkdir(parents=True)
    go = local[go_path]
    env = {"GOTOOLCHAIN": "local"}
    started = time.monotonic()
    try:
        for module, package, binary in PACKAGES:
            ldflags = "-s -w" + (VERSION_LDFLAGS if module == "kubernetes" else "")
            command = go[
                "build", "-trimpath", f"-ldflags={ldflags}", "-o", str(staging / "bin" / binary), package
            ]
            log(f"building {binary} ({package}) in {MODULES_DIR / module} ...")
            step = time.monotonic()
            try:
                with local.cwd(MODULES_DIR / module), local.env(**env):
                    command()
            except ProcessExecutionError as exc:
                raise BuildError(
                    f"building {binary} failed (exit {exc.retcode}): cd {MODULES_DIR / module} && "
                    f"{' '.join(env_k + '=' + v for env_k, v in env.items())} {command}\n"
                    f"{_tail(str(exc.stdout) + str(exc.stderr))}"
                ) from None
            except OSError as exc:
                raise BuildError(f"building {binary}: cannot run {go_path}: {exc}") from None
            log(f"  {binary} built in {time.monotonic() - step:.0f} s")
        manifest = {
            "kubernetes": KUBERNETES_VERSION,
            "etcd": ETCD_VERSION,
            "go": str(go["version"]().strip()),
            "modules": modules_hash(),
            "built_seconds": round(time.monotonic() - started, 1),
        }
        (staging / "build.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    elapsed = time.monotonic() - started
    log(f"control plane {KUBERNETES_VERSION} (etcd {ETCD_VERSION}) built in {elapsed:.0f} s: {target}")
    return ControlPlaneBinaries(target, KUBERNETES_VERSION, ETCD_VERSION), False


def require_binaries(root: Path | None = None, *, build: bool = True) -> ControlPlaneBinaries:
    """The cached build; built now (printing progress) when the cache lacks it, unless ``build`` is False."""
    binaries, _ = prepare(root, log=lambda line: print(f"cluster: {line}", flush=True), build=build)
    return binaries
