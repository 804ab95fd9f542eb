"""Helpers of the service tests: run ``affectkit serve`` in a subprocess and talk to it with urllib."""
from __future__ import annotations

import http.client
import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

LISTENING = re.compile(r"listening on http://([^/\s]+)/")


class ServerProcess:
    """``python -m affectkit serve --port 0 ...`` with its output in ``log_path``; the address is read
    from the line it prints once it accepts connections. Use as a context manager (always stopped)."""

    def __init__(self, checkpoint, tmp_dir, log_path, *extra: str, startup_timeout: float = 120.0):
        self.tmp_dir = Path(tmp_dir)
        self.log_path = Path(log_path)
        self.cmd = [sys.executable, "-m", "affectkit", "serve", "--checkpoint", str(checkpoint), "--port", "0",
                    "--tmp-dir", str(tmp_dir), *extra]
        self.startup_timeout = startup_timeout
        self.proc: subprocess.Popen | None = None
        self.url = ""

    def start(self) -> "ServerProcess":
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(self.cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            m = LISTENING.search(self.log())
            if m:
                self.url = f"http://{m.group(1)}"
                return self
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited with {self.proc.returncode}:\n{self.log()}")
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"the server did not start within {self.startup_timeout} s:\n{self.log()}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM (graceful shutdown), then SIGKILL if it has not exited after ``timeout`` s."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode

    def files_left(self) -> list[Path]:
        """Files (not folders) under the temp folder given to the server."""
        return [p for p in self.tmp_dir.rglob("*") if not p.is_dir()]

    def __enter__(self) -> "ServerProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


@dataclass
class Reply:
    status: int
    headers: dict = field(default_factory=dict)
    body: bytes = b""

    @property
    def json(self):
        return json.loads(self.body)


def multipart(parts: list[tuple[str, str | None, bytes]], content_type: str = "application/octet-stream") -> tuple[bytes, str]:
    """A multipart/form-data body from (field name, file name or None, data) parts."""
    boundary = f"----affectkit-test-{uuid.uuid4().hex}"
    out = bytearray()
    for name, filename, data in parts:
        out += f"--{boundary}\r\n".encode()
        disp = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename is not None else "")
        out += f"Content-Disposition: {disp}\r\n".encode()
        if filename is not None:
            out += f"Content-Type: {content_type}\r\n".encode()
        out += b"\r\n" + data + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out), f"multipart/form-data; boundary={boundary}"


def request(url: str, method: str = "GET", body=None, headers: dict | None = None, timeout: float = 60.0) -> Reply:
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return Reply(r.status, {k.lower(): v for k, v in r.headers.items()}, r.read())
    except urllib.error.HTTPError as err:
        return Reply(err.code, {k.lower(): v for k, v in err.headers.items()}, err.read())


def post_file(base_url: str, filename: str, data: bytes, *, field_name: str = "file", chunked: bool = False,
              timeout: float = 60.0) -> Reply:
    """POST ``data`` as the ``file`` field of a form to ``/predict`` (``chunked``: no Content-Length)."""
    body, ctype = multipart([(field_name, filename, data)])
    payload = iter([body[i:i + 65536] for i in range(0, len(body), 65536)]) if chunked else body
    return request(f"{base_url}/predict", "POST", payload, {"Content-Type": ctype}, timeout)


def get_json(base_url: str, path: str) -> dict:
    r = request(base_url + path)
    assert r.status == 200, (r.status, r.body)
    return r.json


class SlowUpload:
    """A chunked upload sent in steps over a raw connection: it keeps its place in the server's
    queue for as long as the test wants (to fill the queue without relying on timing)."""

    def __init__(self, base_url: str, filename: str, data: bytes):
        host, port = base_url.split("//", 1)[1].rsplit(":", 1)
        self.body, self.ctype = multipart([("file", filename, data)])
        self.conn = http.client.HTTPConnection(host, int(port), timeout=60)
        self.sent = 0

    def begin(self, first_bytes: int = 1024) -> None:
        self.conn.putrequest("POST", "/predict")
        self.conn.putheader("Content-Type", self.ctype)
        self.conn.putheader("Transfer-Encoding", "chunked")
        self.conn.endheaders()
        self._send(first_bytes)

    def _send(self, n: int) -> None:
        piece = self.body[self.sent:self.sent + n]
        self.sent += len(piece)
        self.conn.send(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")

    def finish(self) -> Reply:
        self._send(len(self.body) - self.sent)
        self.conn.send(b"0\r\n\r\n")
        r = self.conn.getresponse()
        reply = Reply(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
        self.conn.close()
        return reply

    def abort(self) -> None:
        self.conn.close()


def wait_until(predicate, timeout: float = 20.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
