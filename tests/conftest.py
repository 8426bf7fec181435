"""Shared fixtures: small chaotic series and the location of ../shared/data."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.integrate import solve_ivp

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _lorenz(t, s, sigma=10.0, rho=28.0, beta=8.0 / 3.0):
    x, y, z = s
    return [sigma * (y - x), x * (rho - z) - y, x * y - beta * z]


@pytest.fixture(scope="session")
def lorenz_series():
    """Lorenz-63 on its attractor, dt = 0.01, 6000 steps, shape (6000, 3)."""
    t = np.arange(7000) * 0.01
    sol = solve_ivp(_lorenz, (0, t[-1]), [1.0, 1.0, 1.0], t_eval=t, rtol=1e-9, atol=1e-9)
    return sol.y.T[1000:].copy()


@pytest.fixture(scope="session")
def shared_benchmarks():
    d = SHARED / "benchmarks"
    if not d.is_dir():
        pytest.skip(f"shared benchmark data not found at {d}")
    return d


# ---------------------------------------------------------------------------------------------
# a local HTTP file server for the streaming tests (127.0.0.1 only)
# ---------------------------------------------------------------------------------------------

class _FileServer:
    """Serve the files of one folder over HTTP on 127.0.0.1 (a free port), in a thread.

    ``ranges=True`` honours ``Range: bytes=a-b`` (206 Partial Content, ``Accept-Ranges``);
    ``ranges=False`` ignores it and always sends the whole file (a server without range
    support). A missing file gets 404. ``sent`` counts the body bytes sent per file name.
    """

    def __init__(self, folder, ranges=True):
        import http.server
        import re
        import threading

        self.folder, self.ranges = Path(folder), ranges
        self.sent, self.requests = {}, []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep the test output clean
                pass

            def _send(self, head_only):
                name = self.path.split("?", 1)[0].lstrip("/")
                path = server.folder / name
                server.requests.append((name, self.headers.get("Range")))
                if "/" in name or not name or not path.is_file():
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                size = path.stat().st_size
                start, end, status = 0, size - 1, 200
                m = re.match(r"bytes=(\d+)-(\d*)$", self.headers.get("Range") or "")
                if server.ranges and m:
                    start = int(m.group(1))
                    end = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
                    status = 206
                self.send_response(status)
                if server.ranges:
                    self.send_header("Accept-Ranges", "bytes")
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
                self.send_header("Content-Length", str(end - start + 1))
                self.send_header("Content-Type", "application/octet-stream")
                self.end_headers()
                if head_only:
                    return
                with open(path, "rb") as fh:
                    fh.seek(start)
                    left = end - start + 1
                    try:
                        while left > 0:
                            block = fh.read(min(left, 1 << 16))
                            self.wfile.write(block)
                            server.sent[name] = server.sent.get(name, 0) + len(block)
                            left -= len(block)
                    except (BrokenPipeError, ConnectionResetError):
                        pass  # the client closed the connection early

            def do_GET(self):
                self._send(False)

            def do_HEAD(self):
                self._send(True)

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):  # clients closing early
                import sys
                if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
                    super().handle_error(request, client_address)

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, name) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/{name}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)


@pytest.fixture
def file_server():
    """``file_server(folder, ranges=True)`` starts a server; all are stopped after the test.

    The server runs in a thread of the test process, so the cyclic garbage collector is off
    while it runs: a collection in a server thread that finalises an h5py object waits for
    h5py's global lock, which the reading thread holds while it waits for that server.
    """
    import gc
    servers = []

    def start(folder, ranges=True):
        servers.append(_FileServer(folder, ranges=ranges))
        return servers[-1]

    enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield start
    finally:
        for s in servers:
            s.close()
        if enabled:
            gc.enable()
        gc.collect()
