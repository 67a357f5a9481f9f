"""Start the reference webhook on granian with TLS, bounded reads and graceful shutdown.

This is the process a Dockerfile would run (``peerpods-conformance webhook serve ...``):
granian's main process binds the port, starts the workers and, on SIGTERM or SIGINT,
stops accepting connections and lets each worker finish the requests it is serving
before exiting; a worker that hangs is killed after :data:`SHUTDOWN_GRACE_S`.
Settings reach the workers through the environment, under upstream's variable names.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from sim.server.limits import ServerLimits
from sim.server.tls import TLS_MIN_VERSIONS
from sim.webhook import WebhookSettings

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
    log_level: str = "warning"
    access_log: bool = False
    #: The event loop granian runs the application on (see LOOPS).
    loop: str = "auto"
    #: The RSGI application factory; only the benchmark swaps it (for the constant-reply ceiling).
    app_target: str = APP_TARGET


def worker_env(config: ServeConfig) -> dict[str, str]:
    """The variables the workers rebuild their settings and limits from."""
    env = {
        "TARGET_RUNTIMECLASS": config.settings.target_runtimeclass,
        "POD_VM_EXTENDED_RESOURCE": config.settings.extended_resource,
    }
    env.update(config.limits.to_env())
    return env


def serve(config: ServeConfig) -> None:
    """Serve until SIGTERM/SIGINT; blocks. ``config.key`` must be PKCS#8 PEM (see sim.server.tls)."""
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
        http=HTTPModes.auto,
        websockets=False,
        http1_settings=HTTP1Settings(header_read_timeout=int(config.limits.read_timeout * 1000)),
        ssl_cert=config.cert,
        ssl_key=config.key,
        ssl_protocol_min=SSLProtocols(TLS_MIN_VERSIONS[config.tls_min_version]),
        log_level=LogLevels(config.log_level),
        log_access=config.access_log,
        workers_kill_timeout=SHUTDOWN_GRACE_S,
    )
    server.serve()
