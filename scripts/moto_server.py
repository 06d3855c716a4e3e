"""Runs moto server (the AWS emulator) on 127.0.0.1 for leadbridge's local stack.

Prints one JSON line {"port": N} once listening, then serves until its standard
input closes: the parent (the local stack or a test binary) going away ends it.
Usage: python scripts/moto_server.py [PORT]   (0 or absent: a free port)

DynamoDB requests are served one at a time. DynamoDB applies each conditional
write atomically; moto checks the condition and then writes, so two threads can
both pass the same condition (two holders of one lease). Serializing the
DynamoDB calls gives moto DynamoDB's behaviour. (moto 5.x also runs a
TransactWriteItems on a deep copy of every table and puts it back when the
transaction is cancelled, losing other threads' writes.) Other services stay
concurrent (SQS long polls must not hold up the table).
"""

import json
import logging
import sys
import threading
from threading import Thread

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from moto.server import MotoRequestHandler
from werkzeug.serving import make_server


class OneDynamoDBCallAtATime:
    """WSGI middleware: requests with a DynamoDB `X-Amz-Target` hold one lock
    until their whole response is produced."""

    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        if not environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB_"):
            return self.app(environ, start_response)
        with self.lock:
            result = self.app(environ, start_response)
            try:
                return [b"".join(result)]
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()


def main() -> None:
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    app = OneDynamoDBCallAtATime(DomainDispatcherApplication(create_backend_app))
    server = make_server("127.0.0.1", port, app, True, request_handler=MotoRequestHandler)
    thread = Thread(target=server.serve_forever, daemon=True)
    thread.start()
    print(json.dumps({"port": server.server_address[1]}), flush=True)
    try:
        sys.stdin.read()
    finally:
        server.shutdown()
        thread.join()


if __name__ == "__main__":
    main()
