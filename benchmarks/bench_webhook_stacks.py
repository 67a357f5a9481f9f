"""The HTTP stacks the webhook benchmark compares, each serving the same ReviewHandler.

Run as ``python benchmarks/bench_webhook_stacks.py STACK --app review|constant --port P
--cert C --key K [--workers N]``; ``bench_webhook.py`` starts these as child processes.
``review`` answers real AdmissionReviews; ``constant`` reads the body and answers one
pre-built reply, which is the most a stack can do (its ceiling) on this machine.

* ``granian`` - the shipped server (sim.server.serve, RSGI), Rust HTTP and TLS;
* ``granian-issue11`` - the same before issue 11: HTTP version sniffing (``auto``, whose
  first read has no deadline) and granian's default limits (backlog 1,024, as many
  connections per worker as backlog / workers);
* ``uvicorn`` - ASGI on uvicorn with httptools, Python's ssl module;
* ``stdlib`` - http.server.ThreadingHTTPServer with Python's ssl module.
"""

from __future__ import annotations

import argparse
import os
import ssl
from collections.abc import Awaitable, Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson

from sim.peerpods.webhook import WebhookSettings
from sim.server.limits import ServerLimits
from sim.server.review import Reply, ReviewHandler
from sim.server.rsgi import RsgiApp, tune_gc

CONSTANT = Reply(
    200,
    orjson.dumps(
        {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "response": {"uid": "constant", "allowed": True},
        }
    ),
)


class ConstantHandler(ReviewHandler):
    """Reads the body like the real handler, then answers a pre-built reply: the ceiling."""

    __slots__ = ()

    def review(self, body: bytes) -> Reply:
        return CONSTANT


def make_handler(app: str) -> ReviewHandler:
    cls = ConstantHandler if app == "constant" else ReviewHandler
    return cls(WebhookSettings.resolve(os.environ), ServerLimits.from_env(os.environ))


def rsgi_constant() -> RsgiApp:
    """granian factory for the constant-reply ceiling."""
    app = RsgiApp(make_handler("constant"))
    tune_gc()  # as the real factory does, so the ceiling is measured under the same conditions
    return app


# --------------------------------------------------------------------------- ASGI (uvicorn)

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class AsgiApp:
    """The same handler behind ASGI, for uvicorn."""

    def __init__(self, handler: ReviewHandler) -> None:
        self.handler = handler

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        headers = dict(scope["headers"])
        length = headers.get(b"content-length")
        content_type = headers.get(b"content-type")
        reply = self.handler.precheck(
            scope["method"],
            scope["path"],
            content_type.decode("latin-1") if content_type else None,
            int(length) if length else None,
        )
        if reply is None:
            body = b""
            more = True
            while more:
                message = await receive()
                body += message.get("body", b"")
                more = message.get("more_body", False)
            reply = self.handler.review(body)
        await send(
            {
                "type": "http.response.start",
                "status": reply.status,
                "headers": [
                    (b"content-type", reply.content_type.encode()),
                    (b"content-length", str(len(reply.body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": reply.body})


def serve_uvicorn(args: argparse.Namespace) -> None:
    import uvicorn

    uvicorn.run(
        AsgiApp(make_handler(args.app)),
        host="127.0.0.1",
        port=args.port,
        http="httptools",
        lifespan="off",
        log_level="warning",
        access_log=False,
        ssl_certfile=str(args.cert),
        ssl_keyfile=str(args.key),
    )


# --------------------------------------------------------------------------- stdlib


def serve_stdlib(args: argparse.Namespace) -> None:
    handler = make_handler(args.app)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True
        wbufsize = 65536

        def do_POST(self) -> None:
            length = self.headers.get("Content-Length")
            reply = handler.precheck("POST", self.path, self.headers.get("Content-Type"), int(length or 0))
            if reply is None:
                reply = handler.review(self.rfile.read(int(length or 0)))
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)
            self.wfile.flush()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.load_cert_chain(args.cert, args.key)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.serve_forever()


# --------------------------------------------------------------------------- granian


def serve_granian(args: argparse.Namespace, issue11: bool = False) -> None:
    from sim.server.limits import LISTEN_BACKLOG, MAX_CONNECTIONS_PER_WORKER, ServerLimits
    from sim.server.serve import APP_TARGET, ServeConfig, serve

    target = APP_TARGET if args.app == "review" else "bench_webhook_stacks:rsgi_constant"
    os.environ["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(Path(__file__).parent), os.environ.get("PYTHONPATH")])
    )
    serve(
        ServeConfig(
            host="127.0.0.1",
            port=args.port,
            cert=args.cert,
            key=args.key,
            workers=args.workers,
            app_target=target,
            limits=ServerLimits(read_timeout=args.read_timeout),
            max_connections=1024 // args.workers if issue11 else MAX_CONNECTIONS_PER_WORKER,
            http_mode="auto" if issue11 else "1",
            backlog=1024 if issue11 else LISTEN_BACKLOG,
        )
    )


def serve_granian_issue11(args: argparse.Namespace) -> None:
    serve_granian(args, issue11=True)


STACKS: dict[str, Callable[[argparse.Namespace], None]] = {
    "granian": serve_granian,
    "granian-issue11": serve_granian_issue11,
    "uvicorn": serve_uvicorn,
    "stdlib": serve_stdlib,
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("stack", choices=sorted(STACKS))
    parser.add_argument("--app", choices=["review", "constant"], default="review")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cert", type=Path, required=True)
    parser.add_argument("--key", type=Path, required=True)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--read-timeout", type=float, default=10.0, help="granian stacks only")
    STACKS[(args := parser.parse_args()).stack](args)


if __name__ == "__main__":
    main()
