"""The adapter between granian's RSGI interface and :class:`sim.server.review.ReviewHandler`.

RSGI was chosen over ASGI because granian hands the whole body over in one call and takes
the reply as one bytes object, with TLS and HTTP parsing done in Rust: the Python side of a
review is then little more than the JSON parse, the mutation and the JSON dump (see
``benchmarks/bench_webhook.py`` for the measured comparison with other stacks).

The body is read under a coarse deadline (sim.server.deadlines), and a chunked body is
accumulated only up to the limit, so a slow or oversized client costs bounded time and memory.
"""

from __future__ import annotations

import asyncio
import gc
import os
from collections.abc import AsyncIterator
from typing import Any, Protocol

from granian.rsgi import Scope

from sim.bounds import excerpt
from sim.peerpods.webhook import WebhookSettings
from sim.server.deadlines import Deadlines, expired
from sim.server.limits import ServerLimits
from sim.server.review import Reply, ReviewHandler, status_reply
from sim.server.writedeadline import set_write_deadline

#: A refused request body up to this size is read and dropped rather than left unread:
#: an unread body makes the HTTP layer close the connection, costing the client a new
#: TLS handshake for what was only a wrong path or media type. Bigger ones are not read.
DRAIN_LIMIT = 64 * 1024


class HTTPProtocol(Protocol):
    """The part of granian's RSGI HTTP protocol object this adapter uses."""

    async def __call__(self) -> bytes: ...

    def __aiter__(self) -> AsyncIterator[bytes]: ...

    def response_bytes(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None: ...


_HEADERS: dict[str, list[tuple[str, str]]] = {}


def _headers(reply: Reply) -> list[tuple[str, str]]:
    """Response headers, built once per content type (granian only reads them)."""
    headers = _HEADERS.get(reply.content_type)
    if headers is None:
        headers = _HEADERS[reply.content_type] = [("content-type", reply.content_type)]
    return headers


class RsgiApp:
    """An RSGI application answering AdmissionReviews (and health probes)."""

    __slots__ = ("deadlines", "handler", "limits", "timed_out")

    def __init__(self, handler: ReviewHandler) -> None:
        self.handler = handler
        self.limits = handler.limits
        self.deadlines = Deadlines(handler.limits.read_timeout)
        self.timed_out = status_reply(408, f"request body not received within {self.limits.read_timeout} s")

    def __rsgi_init__(self, loop: asyncio.AbstractEventLoop) -> None:
        """granian's start-up hook, called before the worker builds its listener: the write
        deadline is set on that listener once the loop runs, i.e. once it exists."""
        loop.call_soon(set_write_deadline, self.limits.write_timeout)

    async def __call__(self, scope: Scope, proto: HTTPProtocol) -> None:
        if scope.proto != "http":
            return
        headers = scope.headers
        length_header: str | None = headers.get("content-length")
        length: int | None = None
        if length_header is not None:
            try:
                length = int(length_header)
            except ValueError:
                proto_reply(
                    proto, status_reply(400, f"Content-Length {excerpt(length_header)} is not a number")
                )
                return
        early = self.handler.precheck(scope.method, scope.path, headers.get("content-type"), length)
        if early is not None:
            if length is not None and 0 < length <= DRAIN_LIMIT:
                await self._drain(proto)
            proto_reply(proto, early)
            return
        ticket = self.deadlines.enter()
        try:
            body = await proto() if length is not None else await self._read_chunked(proto)
        except asyncio.CancelledError as error:
            if not expired(error, ticket):
                raise
            proto_reply(proto, self.timed_out)
            return
        except _TooLarge:
            proto_reply(proto, self.handler.too_large(None))
            return
        except RuntimeError:
            # granian's RSGIProtocolClosed/RSGIProtocolError (RuntimeError subclasses): the
            # client went away mid-body. Nobody is left to answer; not a server error.
            return
        finally:
            self.deadlines.leave(ticket)
        proto_reply(proto, self.handler.review(body))

    async def _drain(self, proto: HTTPProtocol) -> None:
        """Read and drop a small refused body, so that the keep-alive connection survives."""
        ticket = self.deadlines.enter()
        try:
            await proto()
        except asyncio.CancelledError as error:
            if not expired(error, ticket):
                raise  # on expiry the refusal is still sent; the server then closes the connection
        except RuntimeError:
            pass  # the client went away (see __call__); the refusal goes nowhere, harmlessly
        finally:
            self.deadlines.leave(ticket)

    async def _read_chunked(self, proto: HTTPProtocol) -> bytes:
        """Accumulate a body of unknown length, giving up as soon as it crosses the limit."""
        limit = self.limits.max_body_bytes
        parts: list[bytes] = []
        size = 0
        chunk: Any
        async for chunk in proto:
            size += len(chunk)
            if size > limit:
                raise _TooLarge
            parts.append(chunk)
        return b"".join(parts)


class _TooLarge(Exception):
    """A chunked body crossed the size limit."""


def proto_reply(proto: HTTPProtocol, reply: Reply) -> None:
    """Write ``reply`` through RSGI."""
    proto.response_bytes(reply.status, _headers(reply), reply.body)


def create_app() -> RsgiApp:
    """Factory granian calls in each worker: settings and limits come from the environment.

    ``webhook serve`` exports TARGET_RUNTIMECLASS / POD_VM_EXTENDED_RESOURCE (upstream's
    variables) and the limit variables before starting the workers.
    """
    env = os.environ
    app = RsgiApp(ReviewHandler(WebhookSettings.resolve(env), ServerLimits.from_env(env)))
    tune_gc()
    return app


#: Allocations between young-generation collections (CPython's default is 700).
GC_THRESHOLD = (100_000, 50, 1000)


def tune_gc() -> None:
    """Make the cyclic garbage collector rare in a worker.

    A review is a tree of a few hundred dicts, lists and strings, freed by reference
    counting the moment the answer is written; it never forms cycles. With CPython's
    default thresholds the collector still ran every few reviews and walked the worker's
    whole heap (granian, the loop, the handler), ~10 % of a review's CPU in the benchmark.
    Freezing what exists at start-up and raising the thresholds keeps it for real cycles.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLD)
