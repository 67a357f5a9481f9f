"""The bounds a client cannot push the server past.

kube-apiserver refuses request bodies over 3 MiB, so a bigger AdmissionReview can never
come from a real API server: the webhook refuses it from its declared length (or as soon
as a chunked body crosses the bound) without buffering the rest. Timeouts keep a slow or
stalled client from holding a connection, and a worker, for ever.

Connections are bounded per worker, and every connection is on a clock from the moment
it is accepted (see "Bounds on bad input" in the README and benchmarks/bench_bounds.py):

* the TLS handshake must end within :data:`HANDSHAKE_TIMEOUT_S` (granian's TLS listener,
  fixed; a connection that never sends a ClientHello is closed then);
* the request head must then arrive within ``read_timeout`` - counted from the end of the
  handshake, not from the first request byte, because the server speaks HTTP/1.1 only
  (granian's HTTP-version sniffing in ``auto`` mode has no deadline at all);
* between requests, a keep-alive connection is closed after the same ``read_timeout``
  of silence;
* an answer the client does not read is given ``write_timeout``: a connection whose sent
  data stays unacknowledged (or whose window stays closed) that long is aborted by the
  kernel and its buffers freed (sim.server.writedeadline);
* a worker holds at most :func:`connection_limit` connections; more wait in the kernel's
  listen queue (:data:`LISTEN_BACKLOG`) until one closes.
"""

from __future__ import annotations

import resource
from collections.abc import Mapping
from dataclasses import dataclass

from sim.errors import ConformanceInputError

#: kube-apiserver's limit on a request body (``maxRequestBodyBytes``), 3 MiB.
MAX_BODY_BYTES = 3 * 1024 * 1024

#: Seconds granian's TLS listener allows from accept to the end of the handshake. Not a
#: setting of granian 2.8 (tls-listener's default); measured by benchmarks/bench_bounds.py.
HANDSHAKE_TIMEOUT_S = 10.0

#: Connections one worker holds at most (granian's ``backpressure``: a permit per
#: connection, taken at accept and given back when it closes). An idle TLS connection
#: costs a worker about 11 KiB, so the whole allowance is under 100 MiB; holding it all
#: against the deadlines (head, then body: 2 x ``read_timeout``) takes a sustained 410 new
#: TLS connections per second per worker at the default 10 s - a flood, not a trickle.
MAX_CONNECTIONS_PER_WORKER = 8192

#: File descriptors a worker keeps for itself (listener, logs, imports) beyond its connections.
RESERVED_FDS = 256

#: Connections the kernel queues for accept while every worker is at its limit (the
#: kernel caps it at net.core.somaxconn).
LISTEN_BACKLOG = 4096

#: Environment variables through which ``webhook serve`` hands the limits to its workers.
ENV_READ_TIMEOUT = "PEERPODS_WEBHOOK_READ_TIMEOUT"
ENV_MAX_BODY = "PEERPODS_WEBHOOK_MAX_BODY_BYTES"
ENV_WRITE_TIMEOUT = "PEERPODS_WEBHOOK_WRITE_TIMEOUT"


@dataclass(frozen=True, slots=True)
class ServerLimits:
    """Per-request bounds; defaults match what kube-apiserver itself would send or accept."""

    max_body_bytes: int = MAX_BODY_BYTES
    #: Seconds allowed for reading the headers, and again for reading the body.
    read_timeout: float = 10.0
    #: Seconds an answer may wait for the client to read it (the kernel's TCP_USER_TIMEOUT).
    write_timeout: float = 10.0

    def __post_init__(self) -> None:
        if self.max_body_bytes <= 0:
            raise ConformanceInputError(f"max body size must be positive, got {self.max_body_bytes}")
        if not 0 < self.read_timeout <= 60:
            raise ConformanceInputError(f"read timeout must be in (0, 60] seconds, got {self.read_timeout}")
        if not 1 <= self.write_timeout <= 60:
            raise ConformanceInputError(f"write timeout must be in [1, 60] seconds, got {self.write_timeout}")

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ServerLimits:
        """Read the limits a parent ``webhook serve`` process passed to a worker."""
        defaults = cls()
        try:
            timeout = float(env.get(ENV_READ_TIMEOUT, defaults.read_timeout))
            max_body = int(env.get(ENV_MAX_BODY, defaults.max_body_bytes))
            write_timeout = float(env.get(ENV_WRITE_TIMEOUT, defaults.write_timeout))
        except ValueError as exc:
            raise ConformanceInputError(
                f"{ENV_READ_TIMEOUT}/{ENV_MAX_BODY}/{ENV_WRITE_TIMEOUT}: {exc}"
            ) from None
        return cls(max_body_bytes=max_body, read_timeout=timeout, write_timeout=write_timeout)

    def to_env(self) -> dict[str, str]:
        """The environment that makes :meth:`from_env` rebuild these limits in a worker."""
        return {
            ENV_READ_TIMEOUT: repr(self.read_timeout),
            ENV_MAX_BODY: str(self.max_body_bytes),
            ENV_WRITE_TIMEOUT: repr(self.write_timeout),
        }


def open_files_limit() -> int:
    """Raise this process's open-files soft limit to the hard limit; return the result.

    Workers inherit it; each is a separate process with its own descriptor table.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    if soft == resource.RLIM_INFINITY or soft >= hard:
        return hard
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError):
        return soft
    return hard


def connection_limit(requested: int | None, open_files: int) -> int:
    """Connections per worker: ``requested``, or the default that fits ``open_files``.

    A limit past the open-files limit would make accept fail with EMFILE instead of
    queueing the connection, so it is refused, naming the flag and both numbers.
    """
    room = open_files - RESERVED_FDS
    if requested is None:
        if room < 1:
            raise ConformanceInputError(
                f"open-files limit {open_files} leaves no room for connections "
                f"({RESERVED_FDS} are reserved per worker); raise `ulimit -n`"
            )
        return min(MAX_CONNECTIONS_PER_WORKER, room)
    if requested < 1:
        raise ConformanceInputError(f"--max-connections {requested} must be at least 1")
    if requested > room:
        raise ConformanceInputError(
            f"--max-connections {requested} exceeds what the open-files limit {open_files} allows "
            f"per worker ({room}, {RESERVED_FDS} reserved); raise `ulimit -n` or lower the flag"
        )
    return requested
