"""``peerpods-conformance adaptor serve``: the reference cloud-api-adaptor as a process.

It serves the remote hypervisor API (``hypervisor.Hypervisor`` over ttrpc) on a unix socket,
as ``cloud-api-adaptor`` does for the Kata shim, and reads its configuration from its
environment as CAA's ``cmd/cloud-api-adaptor`` does: a deployment gives it ``peer-pods-cm``
and ``peer-pods-secret`` through ``envFrom`` (``LIBVIRT_URI``, ``LIBVIRT_POOL``,
``LIBVIRT_NET``, ``LIBVIRT_VOL_NAME``, ``LIBVIRT_CPU``, ``LIBVIRT_MEMORY``, ``DISABLECVM``,
``INITDATA``, ...). Its pod VMs boot the image in ``LIBVIRT_VOL_NAME`` (``lpar prepare --disk``)
and are ready once leased and answering on the forwarder port, as CAA's. With ``NODE_NAME``
set it is in Kubernetes, and patches its Node's pod VM capacity as CAA does
(:mod:`sim.peerpods.nodecapacity`). The ``adaptor`` target runs it
when no ``--adaptor-binary`` is given; Kata shim developers can use it as a test double of
the adaptor.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

from sim.errors import ConformanceInputError

__all__ = ["register"]

#: CAA's defaults (kata's configuration-remote.toml ``remote_hypervisor_socket``; CAA's pods dir).
DEFAULT_SOCKET = "/run/peerpod/hypervisor.sock"
DEFAULT_PODS_DIR = "/run/peerpod/pods"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "adaptor",
        help="the reference cloud-api-adaptor, served over the remote hypervisor API",
        description="The reference cloud-api-adaptor: the Kata shim's remote hypervisor, over ttrpc.",
    )
    commands = parser.add_subparsers(dest="adaptor_command", metavar="SUBCOMMAND", required=True)
    serve = commands.add_parser(
        "serve",
        help="serve hypervisor.Hypervisor until SIGTERM or SIGINT",
        description=(
            "Serve the remote hypervisor API as cloud-api-adaptor does. The configuration comes from the "
            "environment, as a deployment's peer-pods-cm and peer-pods-secret give it (LIBVIRT_URI, "
            "LIBVIRT_POOL, LIBVIRT_NET, LIBVIRT_CPU, LIBVIRT_MEMORY, DISABLECVM, INITDATA, ...)."
        ),
    )
    serve.add_argument(
        "--socket", default=DEFAULT_SOCKET, help=f"the unix socket to serve on (default {DEFAULT_SOCKET})"
    )
    serve.add_argument(
        "--pods-dir", default=DEFAULT_PODS_DIR, help=f"per-sandbox directories (default {DEFAULT_PODS_DIR})"
    )
    serve.add_argument(
        "--provider",
        choices=("libvirt", "memory"),
        default="libvirt",
        help="libvirt (pod VMs on LIBVIRT_URI, default qemu:///system) or memory (the reference records, "
        "no VM: a test double for shim developers)",
    )
    serve.add_argument("--cache", type=Path, default=None, help="the pod VM image cache (libvirt provider)")
    serve.add_argument(
        "--boot",
        choices=("volume", "kernel"),
        default="volume",
        help="libvirt provider: volume (default, as CAA: the image LIBVIRT_VOL_NAME through the firmware, "
        "ready once the domain has a DHCP lease and its port 15150 accepts) or kernel (the pod VM kernel "
        "handed to the domain, ready by its console report: nothing dials the pod VM)",
    )
    serve.set_defaults(func=_serve)


def _serve(args: argparse.Namespace) -> int:
    from sim.peerpods import nodecapacity
    from sim.peerpods.adaptor import AdaptorStartError, CloudApiAdaptor
    from sim.peerpods.adaptorservice import HypervisorService
    from sim.peerpods.hypervisor.server import TtrpcServer

    environment = {key: value for key, value in os.environ.items()}
    provider, wait_ready, close = _provider(args, environment)
    node = nodecapacity.node_name(environment)
    adaptor = CloudApiAdaptor(node or os.uname().nodename, provider)
    try:
        limit = adaptor.start(environment)
        if node is not None:  # in Kubernetes: patch the node before serving, as CAA's server.Start
            nodecapacity.advertise(node, limit)
            said = (
                f"{limit} {nodecapacity.ADVERTISED_RESOURCE}"
                if limit is not None
                else "nothing (negative limit)"
            )
            print(f"peerpods-conformance adaptor: node {node} advertises {said}", file=sys.stderr, flush=True)
    except (AdaptorStartError, nodecapacity.NodePatchError) as exc:  # CAA exits at start, saying why
        close()
        print(f"cloud-api-adaptor: {exc}", file=sys.stderr)
        return 1
    service = HypervisorService(adaptor, Path(args.pods_dir), wait_ready)
    try:
        server = TtrpcServer(Path(args.socket), service.methods())
    except (ValueError, FileExistsError, OSError) as exc:
        close()
        raise ConformanceInputError(str(exc)) from None
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server.start()
    print(
        f"peerpods-conformance adaptor: serving hypervisor.Hypervisor on {args.socket}",
        file=sys.stderr,
        flush=True,
    )
    try:
        stop.wait()
    finally:
        server.shutdown()
        if node is not None:  # CAA's Shutdown withdraws the resource; a failure is only logged
            problem = nodecapacity.withdraw(node)
            if problem is not None:
                print(f"cloud-api-adaptor: {problem}", file=sys.stderr)
        close()
    return 0


def _provider(args: argparse.Namespace, environment: dict[str, str]) -> tuple[Any, Any, Any]:
    """The pod VM provider, how to wait for a pod VM to be ready, and how to release it."""
    if args.provider == "memory":
        from sim.peerpods.providers.memory import MemoryProvider

        memory = MemoryProvider()
        return memory, None, memory.close
    from sim.lpar import host
    from sim.lpar.assets import find_assets
    from sim.lpar.isolated import shared_dir_for
    from sim.peerpods.adaptorservice import SEAM_SILENT
    from sim.peerpods.providers.libvirt import LibvirtProvider

    uri = environment.get("LIBVIRT_URI") or host.SYSTEM_URI
    connection = host.connect(uri)
    assets = None if host.is_test_driver(connection) else find_assets(args.cache)
    # on an isolated LPAR, boot files and consoles go where its private libvirtd sees them; the
    # pod VMs boot LIBVIRT_VOL_NAME's image and are ready by lease and forwarder port, as CAA's
    provider = LibvirtProvider(
        connection,
        assets=assets,
        host_dir=shared_dir_for(uri),
        boot_from_volume=assets is not None and args.boot == "volume",
    )
    provider.configure(environment)
    if environment.get(SEAM_SILENT):
        provider.silence_guests(float(environment[SEAM_SILENT]))

    def close() -> None:
        provider.close()
        connection.close()

    return provider, provider.wait_ready, close
