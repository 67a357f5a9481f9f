"""``peerpods-conformance cluster``: the real control plane of the ``cluster`` target.

* ``cluster prepare`` builds etcd, kube-apiserver and kube-scheduler from their Go modules
  (pinned in ``controlplane/``) into ``~/.cache/peerpods-conformance/k8s/`` once, and
  reuses the build afterwards; it prints what it does and how long it took.
* ``cluster up`` starts the local control plane, prints its kubeconfig and how long it took
  to be ready, and stops it (removing everything) on Ctrl-C.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add ``cluster`` and its sub-commands."""
    parser = subparsers.add_parser(
        "cluster",
        help="the local Kubernetes control plane: build it, start it",
        description="The cluster target's own Kubernetes control plane: etcd, kube-apiserver and "
        "kube-scheduler built from their Go modules (prepare, once: 10-25 minutes), started on this "
        "machine for as long as you need it (up).",
    )
    commands = parser.add_subparsers(dest="cluster_command", metavar="SUBCOMMAND", required=True)
    prepare = commands.add_parser(
        "prepare", help="build etcd, kube-apiserver and kube-scheduler into the cache (reused when present)"
    )
    prepare.add_argument(
        "--cache", type=Path, default=None, help="cache root (default $PEERPODS_K8S_CACHE or ~/.cache/...)"
    )
    prepare.add_argument("--force", action="store_true", help="rebuild even if the cache holds this version")
    prepare.set_defaults(func=_prepare)
    up = commands.add_parser("up", help="start the local control plane until Ctrl-C")
    up.add_argument("--cache", type=Path, default=None, help="cache root of the built binaries")
    up.add_argument(
        "--no-build",
        action="store_true",
        help="never build: without a built control plane, stop (exit 2) and say to run `cluster prepare`",
    )
    up.set_defaults(func=_up)


def _log(line: str) -> None:
    print(f"cluster: {line}", file=sys.stderr, flush=True)


def _prepare(args: argparse.Namespace) -> int:
    from sim.harness.targets.cluster.build import prepare

    binaries, reused = prepare(args.cache, force=args.force, log=_log)
    print(
        f"control plane {binaries.kubernetes_version} {'reused' if reused else 'built'}: {binaries.directory}"
    )
    return 0


def _up(args: argparse.Namespace) -> int:
    from sim.harness.targets.cluster.build import prepare
    from sim.harness.targets.cluster.controlplane import ControlPlane

    def interrupted(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    # Ctrl-C or SIGTERM stop it cleanly (a shell's background job ignores SIGINT by default)
    signal.signal(signal.SIGINT, interrupted)
    signal.signal(signal.SIGTERM, interrupted)
    binaries, _ = prepare(args.cache, log=_log, build=not args.no_build)
    with ControlPlane(binaries, log=_log) as plane:
        print(
            f"control plane ready in {plane.ready_seconds:.1f} s; kubeconfig: {plane.kubeconfig}", flush=True
        )
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            print("stopping the control plane", file=sys.stderr, flush=True)
    return 0
