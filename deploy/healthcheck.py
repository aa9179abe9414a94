"""The image's HEALTHCHECK: GET /healthz of the front, or a TCP connect to a runner's port.

POINTSMAN_HEALTHCHECK: empty (the front on POINTSMAN_PORT, default 8080) or `tcp:PORT`
(a runner: it listens only once its version is loaded and warm). Exit 0 healthy, 1 not.
"""

import os
import socket
import sys
import urllib.request

check = os.environ.get("POINTSMAN_HEALTHCHECK", "")
try:
    if check.startswith("tcp:"):
        socket.create_connection(("127.0.0.1", int(check[4:])), timeout=2).close()
    else:
        port = os.environ.get("POINTSMAN_PORT", "8080")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as answer:
            sys.exit(0 if answer.status == 200 else 1)
except (OSError, ValueError) as exc:
    print(f"unhealthy: {exc}", file=sys.stderr)
    sys.exit(1)
