"""The operator's view over HTTP: :class:`MjpegServer` (``multipart/x-mixed-replace`` JPEG, stdlib)."""

from __future__ import annotations

import hmac
import http.server
import threading
from typing import Callable, Sequence
from urllib.parse import parse_qs

BOUNDARY = "wmframe"
_PAGE = """<!doctype html><html><head><title>wm_control teleop</title></head>
<body style="background:#202020;color:#ddd;font-family:sans-serif">
<p>wm_control teleop: camera | world-model preview</p><img src="/stream" style="image-rendering:pixelated">
</body></html>"""


class MjpegServer:
    """Serves the newest JPEG: ``/stream`` (``multipart/x-mixed-replace``), ``/frame.jpg`` (one frame), ``/``
    (a page showing the stream). A thread per client (``ThreadingHTTPServer``); :meth:`update` from any thread.

    Only requests whose ``Host`` header names this server (``localhost``, a loopback address, the bound
    host, or one of ``allowed_hosts``) are answered: a web page elsewhere cannot read the robot's camera
    through a browser on this machine (DNS rebinding). With ``token`` every request must carry it
    (``?token=...`` or ``Authorization: Bearer ...``); the page passes it on to its stream."""

    def __init__(self, host: str = "127.0.0.1", port: int = 8080, log: Callable[[str], None] | None = None,
                 token: str = "", allowed_hosts: Sequence[str] = ()):
        self._cond = threading.Condition()
        self._jpeg: bytes | None = None
        self._seq = 0
        self._closed = False
        self._clients = 0
        self._log = log or (lambda _m: None)
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, fmt: str, *args: object) -> None:  # quiet: no access log on stderr
                server._log(fmt % args)

            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                path, _, query = self.path.partition("?")
                if not server.host_allowed(self.headers.get("Host")):
                    self._reply(403, "text/plain", b"forbidden: unknown Host\n")
                    return
                if server.token and not server.token_ok(query, self.headers.get("Authorization", "")):
                    self._reply(401, "text/plain", b"unauthorized: give ?token=... (the teleop node's mjpeg_token)\n")
                    return
                if path in ("/", "/index.html"):
                    q = f"?token={server.token}" if server.token else ""
                    body = _PAGE.replace('src="/stream"', f'src="/stream{q}"').encode()
                    self._reply(200, "text/html; charset=utf-8", body)
                elif path == "/frame.jpg":
                    jpeg = server.wait_frame(-1, timeout=2.0)[1]
                    if jpeg is None:
                        self._reply(503, "text/plain", b"no frame yet\n")
                    else:
                        self._reply(200, "image/jpeg", jpeg)
                elif path in ("/stream", "/stream.mjpg"):
                    server._stream(self)
                else:
                    self._reply(404, "text/plain", b"not found: try / or /stream or /frame.jpg\n")

            def _reply(self, code: int, ctype: str, body: bytes) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

        try:
            self.httpd = http.server.ThreadingHTTPServer((host, port), Handler)
        except OSError as exc:
            raise RuntimeError(f"cannot serve MJPEG on {host}:{port}: {exc} (choose another mjpeg_port)") from None
        self.httpd.daemon_threads = True
        self.token = str(token or "")
        self.allowed = {h.lower() for h in ("localhost", "127.0.0.1", "::1", host, *allowed_hosts)
                        if h and h not in ("0.0.0.0", "::")}
        self.host = host
        self.port = int(self.httpd.server_address[1])
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="teleop.mjpeg", daemon=True)
        self._thread.start()

    def host_allowed(self, header: str | None) -> bool:
        """Is ``Host: header`` this server (any port spelling of an allowed name)?"""
        if not header:
            return False
        h = header.strip().lower()
        if h.startswith("["):
            name, _, rest = h[1:].partition("]")
            port = rest[1:] if rest.startswith(":") else ""
        else:
            name, _, port = h.partition(":")
        if port and port != str(self.port):
            return False
        return name in self.allowed or name.startswith("127.")

    def token_ok(self, query: str, authorization: str) -> bool:
        given = parse_qs(query).get("token", [""])[0]
        if authorization.lower().startswith("bearer "):
            given = given or authorization[7:].strip()
        return bool(given) and hmac.compare_digest(given.encode(), self.token.encode())

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    @property
    def clients(self) -> int:
        return self._clients

    def update(self, jpeg: bytes) -> None:
        with self._cond:
            self._jpeg = jpeg
            self._seq += 1
            self._cond.notify_all()

    def wait_frame(self, after: int, timeout: float) -> tuple[int, bytes | None]:
        """The newest frame once its sequence number is past ``after`` (or what there is at the timeout)."""
        with self._cond:
            self._cond.wait_for(lambda: self._closed or (self._jpeg is not None and self._seq > after), timeout)
            return self._seq, self._jpeg

    def _stream(self, h: http.server.BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        h.send_header("Cache-Control", "no-store")
        h.send_header("Connection", "close")
        h.end_headers()
        with self._cond:
            self._clients += 1
        seq = 0
        try:
            while not self._closed:
                new, jpeg = self.wait_frame(seq, timeout=1.0)
                if self._closed:
                    break
                if jpeg is None or new == seq:
                    continue
                seq = new
                h.wfile.write(f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
                              .encode() + jpeg + b"\r\n")
                h.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, TimeoutError):
            pass  # the client went away
        finally:
            with self._cond:
                self._clients -= 1

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=2.0)
