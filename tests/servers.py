"""Real storage servers on 127.0.0.1 for the remote-storage tests: an HTTP file server
with range requests, and moto's S3 server in a child process (as s3fs's own tests run it).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

RANGE_RE = re.compile(r"bytes=(\d+)-(\d*)$")


class RangeHandler(SimpleHTTPRequestHandler):
    """Static files with HTTP range requests (fsspec reads by ranges) and a forbidden
    folder; every GET's byte count is recorded on the server."""

    def log_message(self, *args):  # quiet
        pass

    def send_head(self):
        if self.path.startswith("/forbidden/"):
            self.send_error(403, "Forbidden")
            return None
        return super().send_head()

    def do_GET(self):
        match = RANGE_RE.match(self.headers.get("Range", ""))
        path = Path(self.translate_path(self.path))
        if not match or not path.is_file() or self.path.startswith("/forbidden/"):
            f = self.send_head()
            if f:
                with f:
                    self.server.served.append(os.fstat(f.fileno()).st_size)
                    self.copyfile(f, self.wfile)
            return
        size = path.stat().st_size
        start = int(match.group(1))
        end = min(int(match.group(2)) if match.group(2) else size - 1, size - 1)
        self.send_response(206)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Content-Length", str(end - start + 1))
        self.end_headers()
        with open(path, "rb") as f:
            f.seek(start)
            self.wfile.write(f.read(end - start + 1))
        self.server.served.append(end - start + 1)


class Server(ThreadingHTTPServer):
    request_queue_size = 128  # many workers' requests at once (the default backlog is 5)
    daemon_threads = True


@contextmanager
def http_server(root: Path):
    """``(base URL, list of bytes served per GET)`` for files under ``root``."""
    handler = lambda *a, **kw: RangeHandler(*a, directory=str(root), **kw)  # noqa: E731
    server = Server(("127.0.0.1", 0), handler)
    server.served = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", server.served
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


MOTO = """
import sys
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
print(server.get_host_and_port()[1], flush=True)
sys.stdin.read()  # until the test closes our stdin
server.stop()
"""


@contextmanager
def moto_server(**env):
    """The endpoint URL of a moto S3 server in a child process; ``env`` e.g.
    ``INITIAL_NO_AUTH_ACTION_COUNT="0"`` makes it refuse unknown credentials."""
    proc = subprocess.Popen([sys.executable, "-c", MOTO], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env={**os.environ, **env})
    try:
        port = int(proc.stdout.readline())
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()
