"""A small JSON API: GET /greet?name=N and POST /stats {"numbers": [...]}.

The agent gives the port in $PORT and the secret `greeting` as $GREETING.
"""

import json
import os
import signal
import statistics
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

GREETING = os.environ["GREETING"]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        url = urlparse(self.path)
        if url.path == "/healthz":
            return self.reply(200, {"ok": True})
        if url.path == "/greet":
            name = parse_qs(url.query).get("name", ["world"])[0]
            return self.reply(200, {"message": f"{GREETING}, {name}!"})
        self.reply(404, {"error": f"no route {url.path}"})

    def do_POST(self):
        if urlparse(self.path).path != "/stats":
            return self.reply(404, {"error": f"no route {self.path}"})
        length = int(self.headers.get("Content-Length", "0"))
        try:
            numbers = [float(n) for n in json.loads(self.rfile.read(length))["numbers"]]
        except (ValueError, KeyError, TypeError) as error:
            return self.reply(400, {"error": f"expected {{\"numbers\": [...]}}: {error}"})
        if not numbers:
            return self.reply(400, {"error": "numbers is empty"})
        self.reply(200, {"count": len(numbers), "sum": sum(numbers),
                         "mean": statistics.fmean(numbers)})

    def reply(self, status, document):
        body = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


if __name__ == "__main__":
    server = ThreadingHTTPServer(("0.0.0.0", int(os.environ["PORT"])), Handler)
    print(f"listening on :{os.environ['PORT']}", flush=True)
    # As PID 1 a process has no default signal actions: without a handler,
    # SIGTERM would be ignored and the container killed after the grace.
    signal.signal(signal.SIGTERM, lambda number, frame: sys.exit(0))
    server.serve_forever()
