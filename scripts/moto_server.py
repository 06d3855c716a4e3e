"""Runs moto server (the AWS emulator) on 127.0.0.1 for leadbridge's local stack.

Prints one JSON line {"port": N} once listening, then serves until its standard
input closes: the parent (the local stack or a test binary) going away ends it.
Usage: python scripts/moto_server.py [PORT]   (0 or absent: a free port)
"""

import json
import logging
import sys

from moto.server import ThreadedMotoServer


def main() -> None:
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    _, bound = server.get_host_and_port()
    print(json.dumps({"port": bound}), flush=True)
    try:
        sys.stdin.read()
    finally:
        server.stop()


if __name__ == "__main__":
    main()
