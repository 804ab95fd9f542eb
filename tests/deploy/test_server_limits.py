"""Connection limits of `affectkit serve` over real HTTP on loopback: the header deadline, the bound on
open connections, the body timeout, and flat memory over many requests."""
import json
import os
import socket
import time
from pathlib import Path

import pytest

from .serve_helpers import ServerProcess, SlowUpload, post_file, request, wait_until

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

HEAD = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


def _address(srv):
    host, port = srv.url.split("//", 1)[1].rsplit(":", 1)
    return host, int(port)


def _read_until_closed(sock, limit: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection; and when that was (monotonic)."""
    sock.settimeout(limit)
    got = b""
    while True:
        try:
            piece = sock.recv(65536)
        except ConnectionResetError:
            piece = b""
        if not piece:
            return got, time.monotonic()
        got += piece


def _read_response(sock) -> bytes:
    """One response with a Content-Length from a kept-alive connection."""
    sock.settimeout(10)
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:"))
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def _rss_bytes(pid: int) -> int:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.fixture(scope="module")
def quick(trained, tmp_path_factory):
    """1 s to send a request head, 2 s for an upload."""
    root = tmp_path_factory.mktemp("serve_limits")
    with ServerProcess(trained.best_dir, root / "tmp", root / "server.log",
                       "--header-timeout", "1", "--upload-timeout", "2") as srv:
        yield srv


@pytest.fixture(scope="module")
def videos(tiny_synth):
    db = json.loads(Path(tiny_synth).read_text())["database"]
    return [Path(tiny_synth).parent / v["video"] for v in db.values() if v["subset"] == "testing"]


def test_idle_connection_is_closed_after_the_header_timeout(quick):
    t0 = time.monotonic()
    with socket.create_connection(_address(quick)) as sock:
        got, closed = _read_until_closed(sock, 10)
    assert got == b""  # nothing was asked: closed without an answer
    assert 0.8 <= closed - t0 <= 2.5, closed - t0


def test_trickled_head_is_closed_with_408(quick):
    t0 = time.monotonic()
    with socket.create_connection(_address(quick)) as sock:
        sock.settimeout(0.3)
        got = b""
        for byte in HEAD:  # one byte per 0.3 s: the head would take about 12 s
            try:
                sock.send(bytes([byte]))
            except OSError:
                break
            try:
                piece = sock.recv(65536)
            except socket.timeout:
                continue
            except ConnectionResetError:
                break
            got += piece
            if not piece:
                break
        closed = time.monotonic()
    assert 0.8 <= closed - t0 <= 2.5, closed - t0
    assert got.startswith(b"HTTP/1.1 408"), got[:200]
    assert json.loads(got.partition(b"\r\n\r\n")[2])["error"]["code"] == "header_timeout"
    assert request(quick.url + "/health").status == 200  # the server is fine


def test_kept_alive_connection_gets_the_same_deadline_for_its_next_head(quick):
    with socket.create_connection(_address(quick)) as sock:
        sock.sendall(HEAD)  # a complete head at once: answered, the connection stays open
        first = _read_response(sock)
        assert first.startswith(b"HTTP/1.1 200")
        t0 = time.monotonic()
        sock.sendall(b"GET /hea")  # then the start of a next request, never finished
        got, closed = _read_until_closed(sock, 10)
    assert 0.8 <= closed - t0 <= 2.5, closed - t0
    assert got.startswith(b"HTTP/1.1 408"), got[:200]


def test_slow_upload_body_is_408_after_the_upload_timeout(quick, videos):
    up = SlowUpload(quick.url, "slow.mp4", videos[0].read_bytes())
    t0 = time.monotonic()
    up.begin(2048)  # head and the first bytes of the body, then nothing
    r = up.conn.getresponse()
    elapsed = time.monotonic() - t0
    body = json.loads(r.read())
    up.abort()
    assert r.status == 408 and body["error"]["code"] == "upload_timeout"
    assert 1.8 <= elapsed <= 6, elapsed
    assert wait_until(lambda: not quick.files_left(), 5)  # the partial upload is removed


def test_connections_over_the_limit_are_refused_with_503(trained, tmp_path):
    with ServerProcess(trained.best_dir, tmp_path / "tmp", tmp_path / "server.log",
                       "--max-connections", "3", "--header-timeout", "30") as srv:
        idle = [socket.create_connection(_address(srv)) for _ in range(3)]
        try:
            time.sleep(0.5)  # the server has accepted them
            t0 = time.monotonic()
            with socket.create_connection(_address(srv)) as fourth:
                fourth.sendall(HEAD)
                got, closed = _read_until_closed(fourth, 5)
            assert closed - t0 < 1.5, closed - t0  # closed at once (after at most the 1 s linger)
            head, _, body = got.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 503"), got[:200]
            assert b"retry-after: 1" in head.lower()
            assert json.loads(body)["error"]["code"] == "too_many_connections"
            r = request(srv.url + "/health", timeout=5)  # still refused while the three are open
            assert r.status == 503
        finally:
            for s in idle:
                s.close()
        assert wait_until(lambda: request(srv.url + "/health", timeout=5).status == 200, 5)
        # the closed connections are no longer counted: only the /health request's own is open
        assert wait_until(lambda: request(srv.url + "/health").json["connections"]["open"] == 1, 5)
        health = request(srv.url + "/health").json
        assert health["limits"]["max_connections"] == 3
        assert health["connections"]["refused"] >= 2


def test_memory_stays_flat_over_many_requests(quick, videos):
    pid = quick.proc.pid
    body = videos[0].read_bytes()

    def round_of_requests(n: int) -> None:
        for i in range(n):
            if i % 10 == 0:
                r = post_file(quick.url, "clip.mp4", body)  # a real prediction
                assert r.status == 200, r.body
            elif i % 3 == 0:
                r = post_file(quick.url, "notes.txt", b"not a video\n" * 200)
                assert r.status == 415
            else:
                assert request(quick.url + "/health").status == 200

    round_of_requests(20)  # warm-up: allocator pools, the model's first passes, imports on first use
    before = _rss_bytes(pid)
    round_of_requests(100)
    growth = _rss_bytes(pid) - before
    print(f"server RSS growth over 100 requests: {growth / 2**20:.1f} MB (from {before / 2**20:.0f} MB)")
    assert growth < 30 * 2**20, growth
    assert not quick.files_left()
