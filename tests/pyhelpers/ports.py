"""Ports for the processes the Python test suites start (tests/deploy, tests/clients).

Each suite's conftest.py puts this folder on `sys.path`.
"""

from __future__ import annotations

import random
import socket


def free_port() -> int:
    """A port nothing listens on, from below the kernel's ephemeral range (32768 and up).

    A port the kernel hands out for `bind(0)` comes from the range it also uses for outgoing
    connections, so between this probe and the process that binds it, another process's
    connection (a gateway's to PostgreSQL or Redis) can take it: "Address already in use".
    """
    for _ in range(100):
        port = random.randint(20000, 32000)
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below the ephemeral range")
