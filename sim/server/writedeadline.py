"""The write deadline: a client that stops reading its answer is cut off, and its memory returned.

granian (2.8) has no write timeout: an answer the client never reads waits in hyper's
buffers and the kernel's socket buffer for as long as the client keeps its window closed
(issue 19: four such clients pinned 110 MiB of a worker for good). The kernel has the
deadline: ``TCP_USER_TIMEOUT`` aborts a connection whose sent data stays unacknowledged -
or whose peer keeps a zero window - for longer than it (Linux >= 5.1 counts zero-window
probing too). A listening socket's value is inherited by every connection it accepts, so
each worker sets it on its listener once, as soon as its event loop runs (granian builds
the listener inside the worker, after the application is loaded). The abort makes the
pending write fail, and granian drops the connection with everything it held.
"""

from __future__ import annotations

import contextlib
import os
import socket
import stat

#: Linux's socket option number (``socket.TCP_USER_TIMEOUT`` where Python defines it).
TCP_USER_TIMEOUT = getattr(socket, "TCP_USER_TIMEOUT", 18)


def listening_tcp_fds() -> list[int]:
    """This process's file descriptors that are listening TCP sockets."""
    found = []
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        try:
            if not stat.S_ISSOCK(os.fstat(fd).st_mode):
                continue
            with socket.socket(fileno=os.dup(fd)) as probe:
                tcp = probe.family in (socket.AF_INET, socket.AF_INET6) and probe.type == socket.SOCK_STREAM
                if tcp and probe.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
                    found.append(fd)
        except OSError:
            continue
    return found


def set_write_deadline(seconds: float) -> int:
    """Give every listening TCP socket of this process a write deadline; return how many."""
    count = 0
    for fd in listening_tcp_fds():
        with contextlib.suppress(OSError), socket.socket(fileno=os.dup(fd)) as listener:
            listener.setsockopt(socket.IPPROTO_TCP, TCP_USER_TIMEOUT, int(seconds * 1000))
            count += 1
    return count
