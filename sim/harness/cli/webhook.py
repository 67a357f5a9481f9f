"""``peerpods-conformance webhook serve``: the reference webhook as an HTTPS server.

This command line is what a container image would run, for example::

    peerpods-conformance webhook serve --host 0.0.0.0 --port 9443 \\
        --cert /etc/webhook/certs/tls.crt --key /etc/webhook/certs/tls.key

(the certificate mounted from a Secret, as the upstream chart mounts cert-manager's).
``--self-signed [CA_FILE]`` makes a throw-away CA and certificate for local runs and
writes the CA to CA_FILE, ready for ``run --target webhook --webhook-ca CA_FILE``.
"""

from __future__ import annotations

import argparse
import functools
import os
import shutil
import signal
import socket
import sys
import tempfile
from pathlib import Path

from sim.errors import ConformanceInputError
from sim.files import non_regular_kind
from sim.peerpods.webhook import (
    ENV_EXTENDED_RESOURCE,
    ENV_TARGET_RUNTIMECLASS,
    EXTENDED_RESOURCE_DEFAULT,
    TARGET_RUNTIMECLASS_DEFAULT,
    WebhookSettings,
)
from sim.server.limits import MAX_CONNECTIONS_PER_WORKER, ServerLimits, connection_limit, open_files_limit
from sim.server.serve import LOOPS
from sim.server.tls import (
    TLS_MIN_VERSIONS,
    ServingPair,
    certificate_identity,
    load_certificates,
    self_signed,
)

DEFAULT_PORT = 9443  # controller-runtime's webhook port, which the upstream chart uses
DEFAULT_CA_FILE = "webhook-ca.pem"


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``webhook serve``."""
    parser = subparsers.add_parser("webhook", help="the reference webhook as an HTTPS AdmissionReview server")
    actions = parser.add_subparsers(dest="webhook_command", metavar="ACTION", required=True)
    serve = actions.add_parser(
        "serve",
        help="serve /mutate-v1-pod, /healthz and /readyz over HTTPS",
        description="Serve the reference mutating webhook (AdmissionReview admission.k8s.io/v1) over HTTPS.",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 in a container)")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    serve.add_argument("--cert", type=Path, help="PEM certificate chain (leaf first)")
    serve.add_argument("--key", type=Path, help="PEM private key of the certificate (any PEM format)")
    serve.add_argument(
        "--self-signed",
        nargs="?",
        const=DEFAULT_CA_FILE,
        metavar="CA_FILE",
        help=f"make a throw-away CA and certificate; write the CA to CA_FILE (default {DEFAULT_CA_FILE})",
    )
    serve.add_argument(
        "--san",
        action="append",
        default=[],
        metavar="NAME",
        help="extra DNS name or IP for the self-signed certificate (repeatable)",
    )
    serve.add_argument("--tls-min-version", choices=sorted(TLS_MIN_VERSIONS), default="1.3")
    serve.add_argument(
        "--target-runtimeclass",
        help=f"RuntimeClass whose pods are mutated (default: env {ENV_TARGET_RUNTIMECLASS}, "
        f"else {TARGET_RUNTIMECLASS_DEFAULT})",
    )
    serve.add_argument(
        "--extended-resource",
        help=f"pod VM extended resource (default: env {ENV_EXTENDED_RESOURCE}, "
        f"else {EXTENDED_RESOURCE_DEFAULT})",
    )
    serve.add_argument("--workers", type=int, default=1, help="worker processes (default 1; one per CPU)")
    serve.add_argument(
        "--loop", choices=LOOPS, default="auto", help="event loop (default auto: rloop if installed)"
    )
    serve.add_argument(
        "--read-timeout",
        type=float,
        default=10.0,
        help="seconds to receive the request head (from the end of the TLS handshake, and between "
        "keep-alive requests), and again the body (default 10)",
    )
    serve.add_argument(
        "--write-timeout",
        type=float,
        default=10.0,
        help="seconds an answer may wait for a client that does not read it; the connection is then "
        "cut off and its memory freed (default 10)",
    )
    serve.add_argument(
        "--max-connections",
        type=int,
        metavar="N",
        help=f"connections each worker holds at most; more wait in the listen queue "
        f"(default {MAX_CONNECTIONS_PER_WORKER}, lowered to fit the open-files limit)",
    )
    serve.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])
    serve.add_argument("--access-log", action="store_true", help="log every request")
    serve.set_defaults(func=run_serve)


def settings_from(args: argparse.Namespace, env: dict[str, str]) -> WebhookSettings:
    """Command-line flags override upstream's environment variables, which override defaults."""
    return WebhookSettings.resolve(
        env, target_runtimeclass=args.target_runtimeclass, extended_resource=args.extended_resource
    )


def check_bindable(host: str, port: int) -> None:
    """Name a busy or unusable address up front, instead of granian's traceback."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ConformanceInputError(f"--host {host!r}: {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            raise ConformanceInputError(f"--host {host} --port {port}: {exc.strerror}") from None


def check_writable_file(flag: str, path: Path) -> None:
    """A file the command will write: its directory must exist, and the file, if there, be a regular one."""
    if path.is_dir():
        raise ConformanceInputError(f"{flag} {path}: is a directory; give a file name for the CA")
    if (kind := non_regular_kind(path)) is not None:
        raise ConformanceInputError(
            f"{flag} {path}: is {kind}, not a regular file; give a file name for the CA"
        )
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise ConformanceInputError(f"{flag} {path}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise ConformanceInputError(f"{flag} {path}: directory {parent} is not writable")


def reload_pair(pair: ServingPair, cert: Path, key: Path) -> None:
    """On SIGHUP (in granian's main process, before it restarts the workers): take up the
    pair at ``cert``/``key`` if it is whole and matching; else keep the one serving, saying why
    in one line that names the file."""
    try:
        leaf = pair.install(cert, key)
    except ConformanceInputError as exc:
        print(f"webhook: SIGHUP: keeping the certificate in use: {exc}", file=sys.stderr, flush=True)
        return
    ident = certificate_identity(leaf)
    print(
        f"webhook: SIGHUP: serving certificate {cert} ({ident['subject']} sha256 {ident['sha256']})",
        file=sys.stderr,
        flush=True,
    )


def run_serve(args: argparse.Namespace) -> int:
    """Check the inputs, prepare the certificate, then serve until SIGTERM."""
    # a SIGHUP before granian installs its reload handler must not kill the server
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        return _serve(args)
    finally:
        signal.signal(signal.SIGHUP, previous)


def _serve(args: argparse.Namespace) -> int:
    from sim.server.serve import ServeConfig, serve

    if not 0 < args.port < 65536:
        raise ConformanceInputError(f"--port {args.port} is not a TCP port")
    if args.workers < 1:
        raise ConformanceInputError(f"--workers {args.workers} must be at least 1")
    max_connections = connection_limit(args.max_connections, open_files_limit())
    if args.self_signed is not None and (args.cert or args.key):
        raise ConformanceInputError("--self-signed makes its own certificate; drop --cert/--key")
    if args.self_signed is None and not (args.cert and args.key):
        raise ConformanceInputError("HTTPS only: give --cert and --key, or --self-signed for a local run")
    if args.self_signed is not None:
        check_writable_file("--self-signed", Path(args.self_signed))
    check_bindable(args.host, args.port)
    limits = ServerLimits(read_timeout=args.read_timeout, write_timeout=args.write_timeout)
    settings = settings_from(args, dict(os.environ))
    workdir = Path(tempfile.mkdtemp(prefix="peerpods-webhook-tls-"))
    on_reload = functools.partial(
        print, "webhook: SIGHUP: the self-signed certificate is kept", file=sys.stderr
    )
    try:
        if args.self_signed is not None:
            names = [args.host, *args.san] if args.host not in ("0.0.0.0", "::") else list(args.san)
            names += ["localhost", "127.0.0.1", "::1"]
            try:
                creds = self_signed(workdir, names, Path(args.self_signed))
            except ConformanceInputError as exc:
                raise ConformanceInputError(f"--self-signed {exc}") from None
            cert, key = creds.cert, creds.key
            print(f"webhook: self-signed CA written to {creds.ca}", file=sys.stderr)
        else:
            pair = ServingPair.in_dir(workdir)
            pair.install(args.cert, args.key)
            cert, key = pair.cert, pair.key
            on_reload = functools.partial(reload_pair, pair, args.cert, args.key)
        ident = certificate_identity(load_certificates(cert)[0])
        print(
            f"webhook: serving https://{args.host}:{args.port}/mutate-v1-pod "
            f"(TLS >= {args.tls_min_version}, runtimeclass {settings.target_runtimeclass}, "
            f"resource {settings.extended_resource}, "
            f"{max_connections} connections per worker, {limits.read_timeout:g} s to send a request head, "
            f"{limits.write_timeout:g} s to read an answer, "
            f"certificate {ident['subject']} sha256 {ident['sha256']})",
            file=sys.stderr,
            flush=True,
        )
        serve(
            ServeConfig(
                host=args.host,
                port=args.port,
                cert=cert,
                key=key,
                tls_min_version=args.tls_min_version,
                settings=settings,
                limits=limits,
                workers=args.workers,
                max_connections=max_connections,
                loop=args.loop,
                log_level=args.log_level,
                access_log=args.access_log,
                on_reload=on_reload,
            )
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0
