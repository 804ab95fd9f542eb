"""``affectkit serve``: an HTTP service and a web page around :class:`~affectkit.deploy.predictor.Predictor`.

Endpoints
---------
``POST /predict``  multipart/form-data upload, field ``file`` -> the predictor's JSON (``video`` is the
                   uploaded file's name)
``GET /health``    ``{"status": "ok", "queue": {...}, ...}``
``GET /models``    the loaded model (name, classes, checkpoint, engine, input keys) and the registered names
``GET /``          the web page (``deploy/static/``: plain HTML, CSS and JavaScript, nothing external)

Every error is JSON, ``{"error": {"code": ..., "message": ...}}``, with its HTTP status.

How a request goes through
--------------------------
0. **Connection.** At most ``--max-connections`` connections are open at once (one more is answered
   ``503`` and closed as soon as it is accepted), and each has ``--header-timeout`` seconds to deliver a
   complete request head, else it is closed (see :func:`guarded_protocol`).
1. **Admission.** At most ``--queue-size`` prediction requests are *admitted* at a time (uploading,
   checked, waiting for a worker or running). One more is answered ``503`` at once, with a
   ``Retry-After`` estimated from recent service times, before its body is read. The counter lives on
   the event loop only (no lock needed), so memory, disk and waiting time stay bounded.
2. **Upload.** The multipart body is parsed as it streams in (python-multipart's push parser, not
   Starlette's form parser, which would spool large files to the system temp folder). The ``file``
   part goes in 64 KiB chunks to a file with a random name (``secrets.token_hex``; the client's file
   name is never used as a path) inside the server's private folder (``tempfile.mkdtemp``, mode 0700).
   A ``Content-Length`` larger than the limit is refused before anything is read, and the stream stops
   with ``413`` as soon as the file part passes ``--max-upload-mb``. ``--upload-timeout`` bounds slow
   uploads (``408``).
3. **Content check.** The first bytes must be a known media container (MP4/MOV/3GP ``ftyp``,
   Matroska/WebM, AVI, MPEG-TS/PS, FLV, ASF, Ogg; for an audio-only model also WAV, FLAC, MP3, AAC,
   AIFF, ...; for a model whose loader reads skeleton files, as a gait model's does, also NumPy
   ``.npy`` / ``.npz``, HDF5 and CSV arrays, see :func:`sniff_array`), otherwise ``415`` before any
   decoder sees the file. Then a PyAV probe opens the file and decodes its first frame (``422`` with the
   problem if it cannot); an array file is kept under its format's suffix and checked by the model's
   loader instead (``422`` with the problem). What a model accepts (``/models`` ``accepts``) comes from
   its loader's ``accepts`` where it has one, else from its input keys.
4. **Inference** runs in a pool of ``--workers`` threads, off the event loop. Each worker has its own
   :class:`Predictor` (the predictor is not guaranteed to be thread-safe, and one model per worker lets
   decoding of one request overlap the forward pass of another without a lock); a predictor is taken
   from a free list for each job, so two jobs never share one.
5. **Clean-up.** The upload file is removed after the job, and in every error path (also a client that
   disconnects while uploading or waiting; a job that has not started yet is then cancelled). The
   private folder is removed at shutdown.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import inspect
import logging
import math
import os
import queue
import secrets
import shutil
import sys
import tempfile
import threading
import time
import unicodedata
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ..errors import AffectkitError, MediaError
from ..registry import model_input_keys

log = logging.getLogger("affectkit.serve")

STATIC_DIR = Path(__file__).resolve().with_name("static")
CHUNK_SIZE = 64 * 1024
HEAD_BYTES = 4096  # bytes of an upload kept in memory to recognise its container before anything is written
MULTIPART_SLACK = 16 * 1024  # what a Content-Length may hold beyond the file limit (boundaries, part headers)
MAX_PROBE_PACKETS = 512  # packets the probe demuxes looking for a first decodable frame
MAX_FRAME_PIXELS = 8192 * 8192
DRAIN_MAX_BYTES = 32 * 2**20  # a refused request's body is read and dropped up to this much (see _drain)
DRAIN_SECONDS = 10.0


# ---------------------------------------------------------------------------------------------- CLI
def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", "-c", required=True, help="checkpoint folder, run folder, or .onnx file (with --engine onnx)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback only)")
    p.add_argument("--port", type=int, default=8000, help="port (0: pick a free one; the address is printed)")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda (default cpu)")
    p.add_argument("--engine", choices=("torch", "onnx"), default="torch",
                   help="torch (default: a checkpoint or run folder) or onnx (a file from `affectkit export onnx`)")
    p.add_argument("--fast", action="store_true", help="fast CPU path (torch engine): compiled and checked at start-up, before the first request")
    p.add_argument("--fast-backend", default=None, metavar="NAME", help="with --fast: force a backend (see `affectkit doctor`)")
    p.add_argument("--allow-silent-audio", action="store_true", help="use silence for videos without an audio stream")
    p.add_argument("--max-upload-mb", type=float, default=200.0, help="largest accepted upload (default 200 MB)")
    p.add_argument("--queue-size", type=int, default=8, help="requests waiting or running at once; more get 503")
    p.add_argument("--workers", type=int, default=1, help="inference threads, each with its own model (default 1)")
    p.add_argument("--tmp-dir", default=None, help="where the private upload folder is made (default: the system temp folder)")
    p.add_argument("--upload-timeout", type=float, default=300.0, help="seconds an upload may take (default 300)")
    p.add_argument("--header-timeout", type=float, default=10.0,
                   help="seconds a connection has to send a complete request head (request line and headers); "
                        "an idle or trickling connection is closed after it (default 10)")
    p.add_argument("--max-connections", type=int, default=64,
                   help="open connections at most; one more is answered 503 and closed at once (default 64)")
    p.add_argument("--shutdown-timeout", type=float, default=30.0, help="seconds to let running requests finish on shutdown")
    p.add_argument("--log-level", default="info", choices=("critical", "error", "warning", "info", "debug"),
                   help="server log level (info logs each request)")


# ------------------------------------------------------------------------------------- content check
def _is_mpeg_ts(h: bytes, packet: int, offset: int) -> bool:
    """Sync bytes 0x47 at every packet start we have (at least two)."""
    starts = range(offset, len(h), packet)
    return len(starts) >= 2 and all(h[i] == 0x47 for i in list(starts)[:8])


def sniff_media(head: bytes) -> tuple[str, str] | None:
    """Recognise a media container from its first bytes: ``(format, kind)`` or None.

    ``kind`` is ``"video"`` for containers that can hold video (they may hold audio too) and
    ``"audio"`` for audio-only formats. Only the container is checked here; whether the streams
    decode is the probe's job.
    """
    h = bytes(head[:HEAD_BYTES])
    if len(h) >= 12 and h[4:8] == b"ftyp" and int.from_bytes(h[:4], "big") >= 8:
        if h[8:12] in (b"M4A ", b"M4B ", b"M4P ", b"F4A ", b"F4B "):
            return "mp4 audio", "audio"
        return "mp4/mov/3gp", "video"
    if len(h) >= 8 and h[4:8] in (b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"):  # QuickTime without ftyp
        return "quicktime", "video"
    if h.startswith(b"\x1a\x45\xdf\xa3"):
        return "matroska/webm", "video"
    if len(h) >= 12 and h[:4] in (b"RIFF", b"RIFX", b"RF64"):
        form = h[8:12]
        if form in (b"AVI ", b"AVIX", b"AMV "):
            return "avi", "video"
        if form == b"WAVE":
            return "wav", "audio"
        return None
    if h.startswith(b"FLV\x01"):
        return "flv", "video"
    if h.startswith(b"\x30\x26\xb2\x75\x8e\x66\xcf\x11\xa6\xd9\x00\xaa\x00\x62\xce\x6c"):
        return "asf/wmv", "video"
    if h.startswith(b"\x00\x00\x01\xba"):
        return "mpeg-ps", "video"
    if h.startswith(b"\x00\x00\x01\xb3"):
        return "mpeg video", "video"
    if h[:1] == b"\x47" and (_is_mpeg_ts(h, 188, 0) or len(h) < 189):
        return "mpeg-ts", "video"
    if len(h) > 196 and h[4] == 0x47 and _is_mpeg_ts(h, 192, 4):
        return "m2ts", "video"
    if h.startswith(b"OggS"):
        return "ogg", "video"  # Theora video, or Vorbis/Opus audio: the probe tells
    if h.startswith(b"fLaC"):
        return "flac", "audio"
    if len(h) >= 12 and h.startswith(b"FORM") and h[8:12] in (b"AIFF", b"AIFC"):
        return "aiff", "audio"
    if h.startswith(b"caff"):
        return "caf", "audio"
    if h.startswith(b"#!AMR"):
        return "amr", "audio"
    if h.startswith(b"ID3"):
        return "mp3", "audio"
    if len(h) >= 2 and h[0] == 0xFF and (h[1] & 0xE0) == 0xE0:
        layer = (h[1] >> 1) & 0x3
        if layer == 0 and (h[1] & 0xF6) == 0xF0:
            return "aac (adts)", "audio"
        if layer != 0 and (h[1] >> 3) & 0x3 != 1:  # a valid MPEG version and layer
            return "mp3", "audio"
    return None


# array files a skeleton model reads (data.modalities.read_skeleton): format -> the upload's suffix,
# which tells the model's loader how to read it
ARRAY_SUFFIXES = {"npy": ".npy", "npz": ".npz", "hdf5": ".h5", "csv": ".csv"}
_CSV_BYTES = frozenset(b"0123456789+-.eE,; \t\r\n")


def sniff_array(head: bytes) -> tuple[str, str] | None:
    """An array file from its first bytes: ``(format, "skeleton")`` for NumPy ``.npy`` (magic
    ``\\x93NUMPY``), ``.npz`` (a zip archive whose first member is an ``.npy``), HDF5 (its signature) and a CSV of numbers (one optional
    header line); None otherwise. Whether it holds a readable skeleton is the loader's check."""
    h = bytes(head[:HEAD_BYTES])
    if h.startswith(b"\x93NUMPY"):
        return "npy", "skeleton"
    if h.startswith(b"PK\x03\x04") and len(h) >= 30:  # a zip whose first member is an .npy: an .npz
        name_len = int.from_bytes(h[26:28], "little")
        if h[30:30 + name_len].endswith(b".npy"):
            return "npz", "skeleton"
        return None
    if h.startswith(b"\x89HDF\r\n\x1a\n"):
        return "hdf5", "skeleton"
    lines = h.split(b"\n")
    body = lines[1:] if len(lines) > 1 and not set(lines[0]) <= _CSV_BYTES else lines  # a header line
    text = b"\n".join(body[:-1] if len(h) >= HEAD_BYTES else body)  # a cut last line may hold part of a number
    if text.strip() and set(text) <= _CSV_BYTES and any(c in b"0123456789" for c in text) and b"," in text:
        return "csv", "skeleton"
    return None


def _reason(err: BaseException) -> str:
    text = getattr(err, "strerror", None) or str(err) or type(err).__name__
    return text.strip().splitlines()[0][:200] if text.strip() else type(err).__name__


def probe_media(path: str, *, need_video: bool) -> dict[str, Any]:
    """Open ``path`` with PyAV and decode its first video frame (or audio frame for an audio-only
    model). Raises :class:`MediaError` with the problem if it cannot."""
    import av

    try:
        container = av.open(path, mode="r", metadata_errors="ignore")
    except Exception as err:  # av.FFmpegError, OSError, ValueError, UnicodeDecodeError
        raise MediaError(path, f"cannot be opened as a media file ({_reason(err)})") from None
    with container:
        streams = container.streams.video if need_video else container.streams.audio
        if not streams:
            raise MediaError(path, "has no video stream" if need_video else "has no audio stream")
        stream = streams[0]
        info: dict[str, Any] = {"format": container.format.name, "streams": len(container.streams)}
        if need_video:
            w, h = stream.codec_context.width or 0, stream.codec_context.height or 0
            if w * h > MAX_FRAME_PIXELS:
                raise MediaError(path, f"frame size {w}x{h} is too large")
            info.update(width=w, height=h)
        try:
            for n, packet in enumerate(container.demux(stream)):
                for _frame in packet.decode():
                    return info
                if n >= MAX_PROBE_PACKETS:
                    break
        except Exception as err:  # corrupt data: av.InvalidDataError and relatives
            raise MediaError(path, f"cannot be decoded ({_reason(err)})") from None
    raise MediaError(path, f"no {'video' if need_video else 'audio'} frame could be decoded")


def display_name(raw: str | bytes | None) -> str:
    """The client's file name, for display only: last path component, no control characters."""
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", errors="replace")
    name = (raw or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if not unicodedata.category(ch).startswith("C")).strip()
    if name in ("", ".", ".."):
        return "upload"
    return name[:200]


# ------------------------------------------------------------------------------------------ service
class RequestError(Exception):
    """An error answered to the client as JSON with ``status``."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers


class Service:
    """The state shared by the requests: predictors, worker pool, admission counter, upload folder."""

    def __init__(self, predictors: list, *, engine: str = "torch", queue_size: int = 8,
                 max_upload_bytes: int = 200 * 2**20, tmp_dir: str | None = None, upload_timeout: float = 300.0,
                 header_timeout: float | None = None, max_connections: int | None = None):
        if not predictors:
            raise ValueError("need at least one predictor")
        self.predictors = predictors
        self.model = predictors[0]
        self.engine = engine
        self.workers = len(predictors)
        self.queue_size = int(queue_size)
        self.max_upload_bytes = int(max_upload_bytes)
        self.upload_timeout = float(upload_timeout)
        self.header_timeout = None if header_timeout is None else float(header_timeout)
        self.max_connections = None if max_connections is None else int(max_connections)
        # connection counters, kept by the connection guard (event loop only)
        self.connection_counts = {"open": 0, "refused": 0, "header_timeouts": 0}
        self.input_keys = model_input_keys(self.model)
        # what uploads may be: what the model's loader says it reads (a gait model: skeleton files and
        # videos), else videos for a video model, videos or audio files for an audio-only one
        accepts = getattr(getattr(self.model, "loader", None), "accepts", None)
        if accepts:
            self.accepted_kinds = tuple(accepts)
            self.need_video = "audio" not in self.accepted_kinds  # what the probe of a video/audio upload looks for
        else:
            self.need_video = "video" in self.input_keys
            self.accepted_kinds = ("video",) if self.need_video else ("video", "audio")
        self.tmp_root = tempfile.mkdtemp(prefix="affectkit-serve-", dir=tmp_dir)  # mode 0700
        self._free: queue.SimpleQueue = queue.SimpleQueue()
        for p in predictors:
            self._free.put(p)
        self.pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="affectkit-infer")
        self.admitted = 0  # touched on the event loop only
        self._running = 0
        self._lock = threading.Lock()
        self._avg_seconds: float | None = None  # moving average of the service time of a request
        self.counts = {"ok": 0, "rejected_busy": 0, "client_errors": 0, "server_errors": 0}
        self.started = time.time()
        self.closing = False

    # -- inference (worker threads) ------------------------------------------------------------
    def infer(self, path: str) -> dict[str, Any]:
        predictor = self._free.get()
        with self._lock:
            self._running += 1
        try:
            return predictor.predict(path)
        finally:
            with self._lock:
                self._running -= 1
            self._free.put(predictor)
            remove_quietly(path)

    @property
    def running(self) -> int:
        with self._lock:
            return self._running

    def record_time(self, seconds: float) -> None:
        self._avg_seconds = seconds if self._avg_seconds is None else 0.8 * self._avg_seconds + 0.2 * seconds

    def retry_after(self) -> int:
        """Seconds until a slot is likely free: the admitted requests' work spread over the workers."""
        per = self._avg_seconds if self._avg_seconds is not None else 1.0
        return int(min(120, max(1, math.ceil(per * self.admitted / self.workers))))

    def new_upload_path(self, suffix: str = ".bin") -> str:
        return os.path.join(self.tmp_root, f"upload-{secrets.token_hex(16)}{suffix}")

    def accepts_text(self) -> str:
        """``video``, ``video or audio``, ``skeleton or video``: the upload kinds, for messages."""
        return " or ".join(self.accepted_kinds)

    # -- descriptions --------------------------------------------------------------------------
    def model_info(self) -> dict[str, Any]:
        m = self.model
        config = getattr(m, "config", None) or {}
        return {
            "name": m.model_name,
            "classes": list(m.classes),
            "polarity": config.get("polarity") if isinstance(config, dict) else None,
            "checkpoint": str(m.checkpoint),
            "engine": self.engine,
            "input_keys": list(self.input_keys),
            "accepts": self.accepts_text(),
            "fast": bool(getattr(m, "fast", False)),
            "fast_path": getattr(m, "fast_info", None),  # backend, reason, agreement, first-call seconds
            "device": str(getattr(m, "device", "cpu")),
            "workers": self.workers,
        }

    def health(self) -> dict[str, Any]:
        running = self.running
        return {
            "status": "shutting down" if self.closing else "ok",
            "model": self.model.model_name,
            "engine": self.engine,
            "queue": {"capacity": self.queue_size, "admitted": self.admitted, "running": running,
                      "waiting": max(0, self.admitted - running), "workers": self.workers},
            "limits": {"max_upload_bytes": self.max_upload_bytes, "upload_timeout_s": self.upload_timeout,
                       "header_timeout_s": self.header_timeout, "max_connections": self.max_connections},
            "requests": dict(self.counts),
            "connections": dict(self.connection_counts),
            "average_seconds": round(self._avg_seconds, 4) if self._avg_seconds is not None else None,
            "uptime_seconds": round(time.time() - self.started, 1),
        }

    def close(self) -> None:
        self.closing = True
        self.pool.shutdown(wait=False, cancel_futures=True)
        shutil.rmtree(self.tmp_root, ignore_errors=True)


def remove_quietly(path: str | None) -> None:
    if path:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


# --------------------------------------------------------------------------------- upload streaming
def _multipart_parser_class():
    try:
        from python_multipart.multipart import MultipartParser, parse_options_header
    except ImportError:  # python-multipart < 0.0.13
        from multipart.multipart import MultipartParser, parse_options_header  # type: ignore[no-redef]
    return MultipartParser, parse_options_header


class _UploadWriter:
    """Callbacks of the multipart push parser: the first part named ``file`` goes to disk, checked."""

    def __init__(self, service: Service, parse_options_header):
        self.service = service
        self._parse_options = parse_options_header
        self.path: str | None = None
        self.filename = "upload"
        self.size = 0
        self.found = False  # a `file` part was seen
        self.format: str | None = None
        self.kind: str | None = None  # video, audio or skeleton (sniff_media)
        self._fd: int | None = None
        self._in_file = False
        self._head = bytearray()
        self._sniffed = False
        self._other_bytes = 0
        self._headers: dict[bytes, bytes] = {}
        self._field = bytearray()
        self._value = bytearray()

    def callbacks(self) -> dict[str, Any]:
        return {"on_part_begin": self._part_begin, "on_header_field": self._header_field,
                "on_header_value": self._header_value, "on_header_end": self._header_end,
                "on_headers_finished": self._headers_finished, "on_part_data": self._part_data,
                "on_part_end": self._part_end}

    # parser callbacks
    def _part_begin(self) -> None:
        self._headers = {}
        self._in_file = False

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _header_end(self) -> None:
        self._headers[bytes(self._field).strip().lower()] = bytes(self._value).strip()
        self._field, self._value = bytearray(), bytearray()

    def _headers_finished(self) -> None:
        _, options = self._parse_options(self._headers.get(b"content-disposition", b""))
        if options.get(b"name") == b"file" and not self.found:
            self.found = True
            self._in_file = True
            self.filename = display_name(options.get(b"filename"))

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        n = end - start
        if not self._in_file:
            self._other_bytes += n  # read and dropped, but bounded like the file
            if self._other_bytes > self.service.max_upload_bytes:
                raise RequestError(413, "upload_too_large", f"the form's other fields are larger than the limit of {_mb(self.service.max_upload_bytes)}")
            return
        self.size += n
        if self.size > self.service.max_upload_bytes:
            raise RequestError(413, "upload_too_large", f"the upload is larger than the limit of {_mb(self.service.max_upload_bytes)}")
        if not self._sniffed:
            self._head += data[start:end]
            if len(self._head) >= HEAD_BYTES:
                self._check_head()
            return
        self._write(data[start:end])

    def _part_end(self) -> None:
        if self._in_file:
            if not self._sniffed and self._head:
                self._check_head()
            self._in_file = False

    # the file
    def _check_head(self) -> None:
        kinds = self.service.accepted_kinds
        found = sniff_media(self._head) or (sniff_array(self._head) if "skeleton" in kinds else None)
        if found is None or found[1] not in kinds:
            what = "a video" if kinds == ("video",) else f"a {self.service.accepts_text()} file"
            got = f" (looks like {found[0]}, which has no video)" if found else ""
            raise RequestError(415, "unsupported_media_type", f"{self.filename} is not {what} in a known container format{got}")
        self.format, self.kind = found
        self._sniffed = True
        head, self._head = bytes(self._head), bytearray()
        self._write(head)

    def _write(self, piece: bytes) -> None:
        if self._fd is None:
            self.path = self.service.new_upload_path(ARRAY_SUFFIXES.get(self.format, ".bin") if self.kind == "skeleton" else ".bin")
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
        view = memoryview(piece)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _mb(n: int) -> str:
    return f"{n / 2**20:.3g} MB"


async def receive_upload(request, service: Service) -> _UploadWriter:
    """Stream the multipart body of ``request`` into the service's folder; returns the writer (its
    ``path`` is the file, to be removed by the caller) or raises :class:`RequestError`."""
    from starlette.requests import ClientDisconnect

    MultipartParser, parse_options_header = _multipart_parser_class()
    ctype, params = parse_options_header(request.headers.get("content-type", ""))
    if ctype != b"multipart/form-data" or not params.get(b"boundary"):
        raise RequestError(400, "bad_request", "send the video as multipart/form-data in a field named 'file'")
    length = request.headers.get("content-length")
    if length is not None:
        try:
            declared = int(length)
        except ValueError:
            raise RequestError(400, "bad_request", "invalid Content-Length") from None
        if declared > service.max_upload_bytes + MULTIPART_SLACK:
            raise RequestError(413, "upload_too_large", f"the upload ({_mb(declared)}) is larger than the limit of {_mb(service.max_upload_bytes)}")
    writer = _UploadWriter(service, parse_options_header)
    parser = MultipartParser(params[b"boundary"], writer.callbacks())
    request.state.body_started = True
    try:
        more = True
        while more:
            message = await request.receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnect()
            chunk = message.get("body", b"")
            more = bool(message.get("more_body", False))
            if not more:
                request.state.body_read = True  # all of it is in: nothing left to drain
            for i in range(0, len(chunk), CHUNK_SIZE):
                parser.write(chunk[i:i + CHUNK_SIZE])
        parser.finalize()
    except RequestError:
        writer.close()
        remove_quietly(writer.path)
        raise
    except ClientDisconnect:
        writer.close()
        remove_quietly(writer.path)
        raise
    except OSError as err:  # the upload folder is full or gone
        writer.close()
        remove_quietly(writer.path)
        log.error("cannot store an upload: %s", err)
        raise RequestError(500, "storage_error", f"the server could not store the upload ({_reason(err)})") from None
    except BaseException as err:  # a malformed body (python-multipart's parse errors), cancellation, ...
        writer.close()
        remove_quietly(writer.path)
        if isinstance(err, Exception) and type(err).__module__.split(".")[0] in ("python_multipart", "multipart"):
            raise RequestError(400, "bad_request", f"malformed multipart body ({_reason(err)})") from None
        raise
    writer.close()
    return writer


async def _drain(request) -> bool:
    """Read and drop what is left of a refused request's body (bounded), so that the client reads our
    answer rather than a connection reset (a server that closes a connection with unread data makes
    the kernel send a reset). Returns whether the body was read to its end.

    Nothing is read when the client asked ``Expect: 100-continue`` and no body was read yet (it sends
    none after a final answer), nor when the declared size is above ``DRAIN_MAX_BYTES``.
    """
    if getattr(request.state, "body_read", False):
        return True
    started = getattr(request.state, "body_started", False)
    if not started and request.headers.get("expect", "").lower() == "100-continue":
        return False
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > DRAIN_MAX_BYTES):
        return False

    async def read_rest() -> bool:
        total = 0
        while True:
            message = await request.receive()
            if message["type"] != "http.request":
                return False
            total += len(message.get("body", b""))
            if not message.get("more_body", False):
                return True
            if total > DRAIN_MAX_BYTES:
                return False

    try:
        return await asyncio.wait_for(read_rest(), DRAIN_SECONDS)
    except (asyncio.TimeoutError, Exception):
        return False


async def _wait_disconnect(request) -> None:
    """Return when the client goes away (the body has been read, so ``receive`` only reports that)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


# ------------------------------------------------------------------------------------------ the app
def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None):
    from fastapi.responses import JSONResponse

    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


_STATUS_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
                 408: "request_timeout", 413: "upload_too_large", 415: "unsupported_media_type",
                 422: "validation_error", 429: "too_many_requests", 500: "internal_error", 503: "unavailable"}

_SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"content-security-policy",
     b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
     b"media-src 'self' blob:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"),
]


class _SecurityHeaders:
    """Pure ASGI middleware adding a few headers to every response (the page loads only its own files)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _ in message.get("headers", [])}
                message = {**message, "headers": list(message.get("headers", [])) + [h for h in _SECURITY_HEADERS if h[0] not in names]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def _refuse(request, status: int, code: str, message: str, headers: dict[str, str] | None = None):
    """An error answer to a request whose body may not have been read (see :func:`_drain`)."""
    headers = dict(headers or {})
    if not await _drain(request):
        headers["Connection"] = "close"
    return _error(status, code, message, headers=headers)


def create_app(service: Service):
    """The FastAPI application around a :class:`Service` (closed when the app shuts down)."""
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import FileResponse, JSONResponse
    from starlette.exceptions import HTTPException as StarletteHTTPException
    from starlette.requests import ClientDisconnect
    from starlette.staticfiles import StaticFiles

    from .. import __version__

    @contextlib.asynccontextmanager
    async def lifespan(app):
        try:
            yield
        finally:
            service.close()

    app = FastAPI(title="affectkit", version=__version__, lifespan=lifespan,
                  docs_url=None, redoc_url=None)  # the interactive docs load scripts from a CDN
    app.state.service = service

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        code = _STATUS_CODES.get(exc.status_code, "http_error")
        if exc.status_code == 404:
            message = f"no such resource: {request.method} {request.url.path}"
        elif exc.status_code == 405:
            message = f"method {request.method} is not allowed on {request.url.path}"
        else:
            message = exc.detail if isinstance(exc.detail, str) else code
        return _error(exc.status_code, code, message, headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        parts = []
        for e in exc.errors()[:5]:
            where = ".".join(str(x) for x in e.get("loc", ()))
            parts.append(f"{where}: {e.get('msg', 'invalid')}")
        return _error(422, "validation_error", "; ".join(parts) or "invalid request")

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, exc: Exception):
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return _error(500, "internal_error", f"internal error ({type(exc).__name__})")

    @app.get("/health")
    async def health():
        return service.health()

    @app.get("/models")
    async def models():
        from ..registry import list_models

        return {"loaded": service.model_info(), "registered": list_models()}

    @app.get("/", include_in_schema=False)
    async def index():
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    async def predict(request):  # a plain Starlette route: the body is parsed here, as it streams
        if service.closing:
            return await _refuse(request, 503, "shutting_down", "the server is shutting down", {"Retry-After": "5"})
        if service.admitted >= service.queue_size:
            service.counts["rejected_busy"] += 1
            return await _refuse(request, 503, "queue_full",
                                 f"the server is busy ({service.admitted} requests queued or running, at most {service.queue_size}); retry later",
                                 {"Retry-After": str(service.retry_after())})
        service.admitted += 1
        t0 = time.perf_counter()
        try:
            response = await _handle_predict(request, service)
            if isinstance(response, dict):
                service.counts["ok"] += 1
                service.record_time(time.perf_counter() - t0)
                return JSONResponse(response)
            return response
        except RequestError as err:
            if err.status >= 500:
                service.counts["server_errors"] += 1
            else:
                service.counts["client_errors"] += 1
            if err.status == 408:  # a slow client: no more waiting for its body
                return _error(err.status, err.code, err.message, headers={**(err.headers or {}), "Connection": "close"})
            return await _refuse(request, err.status, err.code, err.message, err.headers)
        except ClientDisconnect:
            service.counts["client_errors"] += 1
            return _error(400, "client_disconnected", "the client went away during the upload")
        finally:
            service.admitted -= 1

    app.add_route("/predict", predict, methods=["POST"])
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.add_middleware(_SecurityHeaders)
    return app


async def _handle_predict(request, service: Service):
    """Upload, check, probe, infer. Returns the result dict, or raises :class:`RequestError`."""
    try:
        upload = await asyncio.wait_for(receive_upload(request, service), timeout=service.upload_timeout)
    except asyncio.TimeoutError:
        raise RequestError(408, "upload_timeout", f"the upload took longer than {service.upload_timeout:g} s") from None
    path, name = upload.path, upload.filename
    try:
        if not upload.found:
            raise RequestError(400, "missing_file", "no field named 'file' in the form")
        if upload.size == 0 or path is None:
            raise RequestError(400, "empty_upload", f"{name} is empty (0 bytes)")
        try:
            if upload.kind != "skeleton":  # an array file is checked by the model's loader (422 below)
                await asyncio.to_thread(probe_media, path, need_video=service.need_video)
        except MediaError as err:
            raise RequestError(422, "undecodable_media", f"{name} {err.problem}") from None

        try:
            job = service.pool.submit(service.infer, path)
        except RuntimeError:  # the pool is shut down: the server is stopping
            raise RequestError(503, "shutting_down", "the server is shutting down", {"Retry-After": "5"}) from None
        result_future = asyncio.wrap_future(job)
        gone = asyncio.ensure_future(_wait_disconnect(request))
        try:
            done, _ = await asyncio.wait({result_future, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
        if result_future not in done:  # the client went away: drop the job if it has not started
            if not job.cancel():
                with contextlib.suppress(Exception):
                    await result_future  # keep the slot until the worker is free again
            log.info("client went away; %s dropped", name)
            raise RequestError(400, "client_disconnected", "the client went away")
        try:
            result = result_future.result()
        except MediaError as err:
            raise RequestError(422, "undecodable_media", f"{name} {err.problem}") from None
        except AffectkitError as err:
            raise RequestError(422, "invalid_input", str(err).replace(path, name)) from None
        except Exception as err:
            log.error("prediction failed on %s", name, exc_info=err)
            raise RequestError(500, "internal_error", f"prediction failed ({type(err).__name__})") from None
        result = dict(result)
        result["video"] = result["media"] = name  # the upload's own name, never the temporary path
        return result
    finally:
        remove_quietly(path)


# ------------------------------------------------------------------------------- connection guard
REFUSED_LINGER_SECONDS = 1.0  # a refused connection is read (and dropped) this long at most, then closed


def _raw_error(status: int, reason: str, code: str, message: str, extra: tuple[tuple[str, str], ...] = ()) -> bytes:
    """A complete HTTP/1.1 error answer with the service's JSON body, written before h11 has a request."""
    import json

    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    head = [f"HTTP/1.1 {status} {reason}", "content-type: application/json", f"content-length: {len(body)}",
            "connection: close", *(f"{k}: {v}" for k, v in extra)]
    head += [f"{k.decode()}: {v.decode()}" for k, v in _SECURITY_HEADERS]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


def guarded_protocol(service: Service, header_timeout: float, max_connections: int):
    """uvicorn's h11 protocol class with two bounds uvicorn does not have.

    - **Header deadline**: a connection has ``header_timeout`` seconds to deliver a complete request head
      (request line and headers), counted from when it is opened and, on a kept-alive connection, from the
      first byte of the next request. uvicorn arms no timer before the first request, and its keep-alive
      timer is cancelled by any byte received, so a client that trickles its head, or sends nothing,
      holds its connection for ever. When the deadline passes the connection is closed (with ``408`` if
      part of a head had come). The request body is bounded elsewhere (``--upload-timeout``); idle time
      between requests by uvicorn's keep-alive timeout.
    - **Connection bound**: at most ``max_connections`` connections are served at once; one more is
      answered ``503`` (``too_many_connections``) as soon as it is accepted, and closed (what it sends is
      read and dropped for at most ``REFUSED_LINGER_SECONDS``, so that it reads the answer rather than a
      reset). uvicorn's ``limit_concurrency`` only answers 503 once a request head has arrived, which an
      idle connection never sends.

    A subclass of the protocol rather than a proxy in front: the deadline needs h11's parser state
    (whether a head is complete), and the protocol is the one place that sees every connection.
    """
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    counts = service.connection_counts
    refused_answer = _raw_error(503, "Service Unavailable", "too_many_connections",
                                f"the server has {max_connections} open connections, its limit; retry later",
                                (("retry-after", "1"),))

    class GuardedH11Protocol(H11Protocol):
        _head_timer: asyncio.TimerHandle | None = None
        _refused = False
        _counted = False

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            if counts["open"] >= max_connections:
                self._refuse()
                return
            counts["open"] += 1
            self._counted = True
            self._arm_head_timer()

        def _refuse(self) -> None:
            self._refused = True
            self.connections.discard(self)  # not counted by uvicorn either (its shutdown waits on these)
            counts["refused"] += 1
            log.warning("refused a connection from %s: %d connections open, the limit", _peer(self.client), max_connections)
            self.transport.write(refused_answer)
            with contextlib.suppress(Exception):
                if self.transport.can_write_eof():
                    self.transport.write_eof()
            self._head_timer = self.loop.call_later(REFUSED_LINGER_SECONDS, self.transport.close)

        def data_received(self, data: bytes) -> None:
            if self._refused:
                return  # read and dropped until the linger timer closes the connection
            if self._head_timer is None and self.conn.their_state is h11.IDLE:
                self._arm_head_timer()  # the first byte of a next request on a kept-alive connection
            super().data_received(data)
            if self.conn.their_state is not h11.IDLE:  # the head is complete (h11 buffers until it is)
                self._disarm_head_timer()

        def eof_received(self):
            if self._refused:
                self.transport.close()
                return None
            return super().eof_received()

        def connection_lost(self, exc) -> None:
            self._disarm_head_timer()
            if self._counted:
                counts["open"] -= 1
                self._counted = False
            super().connection_lost(exc)

        def _arm_head_timer(self) -> None:
            self._disarm_head_timer()
            self._head_timer = self.loop.call_later(header_timeout, self._head_timeout)

        def _disarm_head_timer(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_timeout(self) -> None:
            self._head_timer = None
            if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
                return
            counts["header_timeouts"] += 1
            partial = bool(self.conn.trailing_data[0])
            log.info("closed a connection from %s: no complete request head within %g s (%s)", _peer(self.client),
                     header_timeout, "part of a head received" if partial else "nothing received")
            if partial:
                self.transport.write(_raw_error(408, "Request Timeout", "header_timeout",
                                                f"the request head took longer than {header_timeout:g} s"))
            self.transport.close()

    return GuardedH11Protocol


def _peer(client) -> str:
    return f"{client[0]}:{client[1]}" if client else "a client"


# ---------------------------------------------------------------------------------------- running
def _make_predictor(args):
    from .predictor import Predictor

    kwargs: dict[str, Any] = {"device": args.device, "fast": (getattr(args, "fast_backend", None) or True) if args.fast else False, "allow_silent_audio": args.allow_silent_audio}
    if args.engine != "torch":
        if "engine" not in inspect.signature(Predictor).parameters:
            raise AffectkitError(f"--engine {args.engine} is not available in this version of the predictor")
        kwargs["engine"] = args.engine
    return Predictor(args.checkpoint, **kwargs)


def run_from_args(args) -> int:
    try:
        import uvicorn
        from fastapi import FastAPI  # noqa: F401
    except ImportError as err:
        raise AffectkitError(f"serve needs the serve extra ({err.name} is missing): pip install 'affectkit[serve]'") from None
    if args.queue_size < 1:
        raise AffectkitError(f"--queue-size {args.queue_size}: must be >= 1")
    if args.workers < 1:
        raise AffectkitError(f"--workers {args.workers}: must be >= 1")
    if not args.max_upload_mb > 0:
        raise AffectkitError(f"--max-upload-mb {args.max_upload_mb}: must be > 0")
    if not 0 <= args.port <= 65535:
        raise AffectkitError(f"--port {args.port}: must be between 0 and 65535")
    if not args.header_timeout > 0:
        raise AffectkitError(f"--header-timeout {args.header_timeout}: must be > 0")
    if args.max_connections < 1:
        raise AffectkitError(f"--max-connections {args.max_connections}: must be >= 1")
    if not args.upload_timeout > 0:
        raise AffectkitError(f"--upload-timeout {args.upload_timeout}: must be > 0")
    if args.tmp_dir is not None and not os.path.isdir(args.tmp_dir):
        raise AffectkitError(f"--tmp-dir {args.tmp_dir}: not a folder")
    if not (STATIC_DIR / "index.html").is_file():
        raise AffectkitError(f"{STATIC_DIR}: the web page's files are missing from the installation")
    workers = min(args.workers, args.queue_size)
    print(f"affectkit serve: loading {args.checkpoint} ({workers} worker{'s' * (workers > 1)})", file=sys.stderr, flush=True)
    predictors = [_make_predictor(args) for _ in range(workers)]
    service = Service(predictors, engine=args.engine, queue_size=args.queue_size,
                      max_upload_bytes=int(args.max_upload_mb * 2**20), tmp_dir=args.tmp_dir,
                      upload_timeout=args.upload_timeout, header_timeout=args.header_timeout,
                      max_connections=args.max_connections)
    try:
        app = create_app(service)
        http = guarded_protocol(service, args.header_timeout, args.max_connections)
        config = uvicorn.Config(app, host=args.host, port=args.port, log_level=args.log_level, http=http,
                                lifespan="on", proxy_headers=False, server_header=False,
                                timeout_graceful_shutdown=args.shutdown_timeout)

        class _Server(uvicorn.Server):
            async def startup(self, sockets=None):
                await super().startup(sockets=sockets)
                if self.should_exit or not getattr(self, "servers", None):
                    return
                host, port = self.servers[0].sockets[0].getsockname()[:2]
                shown = f"[{host}]" if ":" in host else host
                print(f"affectkit serve: listening on http://{shown}:{port}/ (model {service.model.model_name}, "
                      f"queue {service.queue_size}, workers {service.workers}, max upload {_mb(service.max_upload_bytes)}, "
                      f"max connections {service.max_connections})",
                      flush=True)

        server = _Server(config)
        try:
            server.run()
        except SystemExit as err:  # uvicorn exits this way when it cannot bind
            raise AffectkitError(f"could not serve on {args.host}:{args.port} (exit status {err.code}; see the log above)") from None
        return 0 if server.started else 1
    finally:
        service.close()
