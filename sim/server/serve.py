"""Start the reference webhook on granian with TLS, bounded reads and graceful shutdown.

This is the process a Dockerfile would run (``peerpods-conformance webhook serve ...``):
granian's main process binds the port, starts the workers and, on SIGTERM or SIGINT,
stops accepting connections and lets each worker finish the requests it is serving
before exiting; a worker that hangs is killed after :data:`SHUTDOWN_GRACE_S`.
Settings reach the workers through the environment, under upstream's variable names.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sim.peerpods.webhook import WebhookSettings
from sim.server.limits import LISTEN_BACKLOG, MAX_CONNECTIONS_PER_WORKER, ServerLimits
from sim.server.tls import TLS_MIN_VERSIONS

#: Seconds a worker gets to finish in-flight requests after SIGTERM before it is killed.
SHUTDOWN_GRACE_S = 30

#: Event loops ``--loop`` accepts; granian's "auto" takes rloop when installed (the fastest
#: measured here, see benchmarks/bench_webhook.py), else uvloop, else asyncio.
LOOPS = ("auto", "rloop", "uvloop", "asyncio")

#: The granian application target (a factory, so nothing runs at import time).
APP_TARGET = "sim.server.rsgi:create_app"


@dataclass(frozen=True)
class ServeConfig:
    """Everything ``webhook serve`` needs to start listening."""

    host: str
    port: int
    cert: Path
    key: Path
    tls_min_version: str = "1.3"
    settings: WebhookSettings = field(default_factory=WebhookSettings)
    limits: ServerLimits = field(default_factory=ServerLimits)
    workers: int = 1
    #: Connections each worker holds at most (sim.server.limits.connection_limit).
    max_connections: int = MAX_CONNECTIONS_PER_WORKER
    log_level: str = "warning"
    access_log: bool = False
    #: The event loop granian runs the application on (see LOOPS).
    loop: str = "auto"
    #: The RSGI application factory; only the benchmark swaps it (for the constant-reply ceiling).
    app_target: str = APP_TARGET
    #: granian's HTTP mode; only the benchmark sets "auto", to measure issue 11's lockout.
    http_mode: str = "1"
    #: The kernel's listen queue; only the benchmark sets granian's default (1,024).
    backlog: int = LISTEN_BACKLOG
    #: Called on SIGHUP in the main process before granian restarts the workers (which then
    #: read ``cert``/``key`` again): the place to replace those files, or to decline to.
    on_reload: Callable[[], None] | None = None


def worker_env(config: ServeConfig) -> dict[str, str]:
    """The variables the workers rebuild their settings and limits from."""
    env = config.settings.to_env()
    env.update(config.limits.to_env())
    return env


def serve(config: ServeConfig) -> None:
    """Serve until SIGTERM/SIGINT; blocks. ``config.key`` must be PKCS#8 PEM (see sim.server.tls).

    HTTP/1.1 only (ALPN offers ``http/1.1``), for two reasons. In granian's ``auto`` mode
    the bytes that tell HTTP/1 from HTTP/2 are read with no deadline, so a client that
    finishes the TLS handshake and sends nothing holds its connection - and one of the
    worker's permits - for ever (issue 11: 1,024 such connections locked every client
    out; hyperium/hyper#3756 and #3962); in HTTP/1.1 mode the header timeout runs from the
    end of the handshake and closes it. And HTTP/2 is what kubebuilder-scaffolded webhooks
    switch off by default (the Rapid Reset and Stream Cancellation advisories);
    kube-apiserver speaks HTTP/1.1 to a webhook that offers only that.
    """
    from granian import Granian
    from granian.constants import HTTPModes, Interfaces, Loops, SSLProtocols
    from granian.http import HTTP1Settings
    from granian.log import LogLevels

    os.environ.update(worker_env(config))
    server = Granian(
        config.app_target,
        factory=True,
        address=config.host,
        port=config.port,
        interface=Interfaces.RSGI,
        workers=config.workers,
        loop=Loops(config.loop),
        http=HTTPModes(config.http_mode),
        websockets=False,
        # From the end of the TLS handshake to the end of the request head, and the idle
        # time allowed between requests on a keep-alive connection.
        http1_settings=HTTP1Settings(
            header_read_timeout=int(config.limits.read_timeout * 1000), keep_alive=True
        ),
        backlog=config.backlog,
        backpressure=config.max_connections,
        ssl_cert=config.cert,
        ssl_key=config.key,
        ssl_protocol_min=SSLProtocols(TLS_MIN_VERSIONS[config.tls_min_version]),
        log_level=LogLevels(config.log_level),
        log_access=config.access_log,
        workers_kill_timeout=SHUTDOWN_GRACE_S,
    )
    if config.on_reload is not None:
        server.on_reload(config.on_reload)
    server.serve()
