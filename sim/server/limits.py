"""The bounds a client cannot push the server past.

kube-apiserver refuses request bodies over 3 MiB, so a bigger AdmissionReview can never
come from a real API server: the webhook refuses it from its declared length (or as soon
as a chunked body crosses the bound) without buffering the rest. Timeouts keep a slow or
stalled client from holding a connection, and a worker, for ever.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sim.errors import ConformanceInputError

#: kube-apiserver's limit on a request body (``maxRequestBodyBytes``), 3 MiB.
MAX_BODY_BYTES = 3 * 1024 * 1024

#: Environment variables through which ``webhook serve`` hands the limits to its workers.
ENV_READ_TIMEOUT = "PEERPODS_WEBHOOK_READ_TIMEOUT"
ENV_MAX_BODY = "PEERPODS_WEBHOOK_MAX_BODY_BYTES"


@dataclass(frozen=True, slots=True)
class ServerLimits:
    """Per-request bounds; defaults match what kube-apiserver itself would send or accept."""

    max_body_bytes: int = MAX_BODY_BYTES
    #: Seconds allowed for reading the headers, and again for reading the body.
    read_timeout: float = 10.0

    def __post_init__(self) -> None:
        if self.max_body_bytes <= 0:
            raise ConformanceInputError(f"max body size must be positive, got {self.max_body_bytes}")
        if not 0 < self.read_timeout <= 60:
            raise ConformanceInputError(f"read timeout must be in (0, 60] seconds, got {self.read_timeout}")

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ServerLimits:
        """Read the limits a parent ``webhook serve`` process passed to a worker."""
        defaults = cls()
        try:
            timeout = float(env.get(ENV_READ_TIMEOUT, defaults.read_timeout))
            max_body = int(env.get(ENV_MAX_BODY, defaults.max_body_bytes))
        except ValueError as exc:
            raise ConformanceInputError(f"{ENV_READ_TIMEOUT}/{ENV_MAX_BODY}: {exc}") from None
        return cls(max_body_bytes=max_body, read_timeout=timeout)

    def to_env(self) -> dict[str, str]:
        """The environment that makes :meth:`from_env` rebuild these limits in a worker."""
        return {ENV_READ_TIMEOUT: repr(self.read_timeout), ENV_MAX_BODY: str(self.max_body_bytes)}
