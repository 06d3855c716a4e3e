"""Runs moto server (the AWS emulator) on 127.0.0.1 for leadbridge's local stack.

Prints one JSON line {"port": N, "dynamodb_port": M} once listening, then serves until its standard
input closes: the parent (the local stack or a test binary) going away ends it.
Usage: python scripts/moto_server.py [PORT]   (0 or absent: a free port)

Two processes, one endpoint. moto is Python: one process serves on one core
(the interpreter lock), and DynamoDB is most of the local stack's AWS work (about
eight requests per lead, against two for SQS). So DynamoDB runs in a second moto
process of its own (`--dynamodb-only`), which this one starts and forwards every
request with a DynamoDB `X-Amz-Target` to; every other service is served here.
Clients see one endpoint, as they would see one region; the ready line also
names the DynamoDB process's port, for the clients that make most DynamoDB
requests to use directly. (`--single` keeps everything in one process.)

DynamoDB requests are served one at a time. DynamoDB applies each conditional
write atomically; moto checks the condition and then writes, so two threads can
both pass the same condition (two holders of one lease). Serializing the
DynamoDB calls gives moto DynamoDB's behaviour. (moto 5.x also runs a
TransactWriteItems on a deep copy of every table and puts it back when the
transaction is cancelled, losing other threads' writes.) Other services stay
concurrent (SQS long polls must not hold up the table).
"""

import http.client
import io
import json
import logging
import subprocess
import sys
import threading
import zlib
from threading import Thread

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from moto.server import MotoRequestHandler
from werkzeug.serving import make_server


def is_dynamodb(environ) -> bool:
    return environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB_")


def read_body(environ) -> bytes:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    return environ["wsgi.input"].read(length) if length else b""


def drain(result) -> bytes:
    """A WSGI app's whole answer, its iterable closed."""
    try:
        return b"".join(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()


class OneDynamoDBCallAtATime:
    """WSGI middleware: requests with a DynamoDB `X-Amz-Target` hold one lock
    until their whole response is produced."""

    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        if not is_dynamodb(environ):
            return self.app(environ, start_response)
        with self.lock:
            return [drain(self.app(environ, start_response))]


class UnprocessedFaults:
    """WSGI middleware on the process that serves DynamoDB: DynamoDB may take
    only part of a `BatchWriteItem` or `BatchGetItem` and return the rest as
    `UnprocessedItems` / `UnprocessedKeys` (under load, always possible); moto
    never does. `POST /__leadbridge/dynamodb-faults` with
    `{"BatchWriteItem": N, "BatchGetItem": M}` makes the next N (M) such calls
    take only each table's first request (key) and hand the rest back
    unprocessed, untouched, as DynamoDB does. The tests of the ledger's retries
    use it."""

    PATH = "/__leadbridge/dynamodb-faults"
    OPERATIONS = ("BatchWriteItem", "BatchGetItem")

    def __init__(self, app):
        self.app = app
        self.pending = {op: 0 for op in self.OPERATIONS}
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO") == self.PATH and environ.get("REQUEST_METHOD") == "POST":
            return self.admin(environ, start_response)
        op = environ.get("HTTP_X_AMZ_TARGET", "").partition(".")[2]
        with self.lock:
            faulted = self.pending.get(op, 0) > 0
            if faulted:
                self.pending[op] -= 1
        if not faulted:
            return self.app(environ, start_response)
        return self.partly(op, environ, start_response)

    def admin(self, environ, start_response):
        asked = json.loads(read_body(environ) or b"{}")
        with self.lock:
            for op in self.OPERATIONS:
                self.pending[op] = int(asked.get(op, self.pending[op]))
            body = json.dumps(self.pending).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]

    def partly(self, op, environ, start_response):
        request = json.loads(read_body(environ))
        held = {}
        for table, items in request.get("RequestItems", {}).items():
            if op == "BatchWriteItem" and len(items) > 1:
                held[table], request["RequestItems"][table] = items[1:], items[:1]
            elif op == "BatchGetItem" and len(items.get("Keys", [])) > 1:
                held[table] = dict(items, Keys=items["Keys"][1:])
                items["Keys"] = items["Keys"][:1]
        sent = json.dumps(request).encode()
        environ["wsgi.input"] = io.BytesIO(sent)
        environ["CONTENT_LENGTH"] = str(len(sent))
        answer = {}

        def keep(status, headers, exc_info=None):
            answer["status"], answer["headers"] = status, headers

        data = drain(self.app(environ, keep))
        if answer["status"].startswith("200"):
            reply = json.loads(data)
            reply["UnprocessedItems" if op == "BatchWriteItem" else "UnprocessedKeys"] = held
            data = json.dumps(reply).encode()
        headers = [
            (k, v) for k, v in answer["headers"] if k.lower() not in ("content-length", "x-amz-crc32")
        ]
        headers += [("Content-Length", str(len(data))), ("X-Amz-Crc32", str(zlib.crc32(data)))]
        start_response(answer["status"], headers)
        return [data]


class DynamoDBElsewhere:
    """WSGI middleware: DynamoDB requests are forwarded, as they came, to the
    moto process on `port`. One connection per request: a request is never
    sent twice (a resend after an ambiguous failure could apply a conditional
    write twice), and a local connect costs next to nothing."""

    HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length"}

    def __init__(self, app, port: int):
        self.app = app
        self.port = port

    def __call__(self, environ, start_response):
        if not is_dynamodb(environ):
            return self.app(environ, start_response)
        body = read_body(environ)
        headers = {
            key[5:].replace("_", "-").title(): value
            for key, value in environ.items()
            if key.startswith("HTTP_")
        }
        if environ.get("CONTENT_TYPE"):
            headers["Content-Type"] = environ["CONTENT_TYPE"]
        path = environ.get("RAW_URI") or environ.get("PATH_INFO", "/")
        if environ.get("QUERY_STRING") and "?" not in path:
            path += "?" + environ["QUERY_STRING"]
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            conn.request(environ["REQUEST_METHOD"], path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
        finally:
            conn.close()
        start_response(
            f"{resp.status} {resp.reason}",
            [(k, v) for k, v in resp.getheaders() if k.lower() not in self.HOP_BY_HOP]
            + [("Content-Length", str(len(data)))],
        )
        return [data]


def start_dynamodb() -> tuple[subprocess.Popen, int]:
    """Starts this script as the DynamoDB process; its port once it listens."""
    child = subprocess.Popen(
        [sys.executable, __file__, "0", "--dynamodb-only"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    line = child.stdout.readline()
    # Whatever it prints later is read, so that it never blocks on a full pipe.
    Thread(target=child.stdout.read, daemon=True).start()
    return child, json.loads(line)["port"]


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    flags = {a for a in sys.argv[1:] if a.startswith("--")}
    port = int(args[0]) if args else 0
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    app = DomainDispatcherApplication(create_backend_app)
    child = None
    if "--dynamodb-only" in flags or "--single" in flags:
        app = UnprocessedFaults(OneDynamoDBCallAtATime(app))
    else:
        child, child_port = start_dynamodb()
        app = DynamoDBElsewhere(app, child_port)
    server = make_server("127.0.0.1", port, app, True, request_handler=MotoRequestHandler)
    thread = Thread(target=server.serve_forever, daemon=True)
    thread.start()
    port = server.server_address[1]
    # The DynamoDB process's own port: a client that talks to it directly
    # skips the forwarding (the local stack's ledger does).
    print(json.dumps({"port": port, "dynamodb_port": child_port if child else port}), flush=True)
    try:
        sys.stdin.read()
    finally:
        server.shutdown()
        thread.join()
        if child is not None:
            child.stdin.close()
            child.wait(timeout=10)


if __name__ == "__main__":
    main()
