"""The HTTP service (`affectkit serve`): the real server in a subprocess, exercised over HTTP."""
import json
import threading
from pathlib import Path

import numpy as np
import pytest

from affectkit.data.media_writer import write_video, write_wav
from affectkit.deploy.server import display_name, sniff_media

from .serve_helpers import ServerProcess, SlowUpload, get_json, post_file, request, wait_until

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")


def _test_videos(tiny_synth) -> list[Path]:
    db = json.loads(Path(tiny_synth).read_text())["database"]
    return [Path(tiny_synth).parent / v["video"] for v in db.values() if v["subset"] == "testing"]


@pytest.fixture(scope="module")
def videos(tiny_synth):
    return _test_videos(tiny_synth)


@pytest.fixture(scope="module")
def server(trained, tmp_path_factory):
    """The service on the tiny trained VAANet, two workers, a queue of 4."""
    root = tmp_path_factory.mktemp("serve_main")
    srv = ServerProcess(trained.best_dir, root / "tmp", root / "server.log", "--workers", "2", "--queue-size", "4")
    srv.start()
    yield srv
    srv.stop()


def _classes(trained):
    return json.loads((Path(trained.best_dir) / "config.json").read_text())["classes"]


# ------------------------------------------------------------------------------------ predictions
def test_predict_a_video(server, videos, trained):
    r = post_file(server.url, "clip one.mp4", videos[0].read_bytes())
    assert r.status == 200, r.body
    res = r.json
    classes = _classes(trained)
    assert res["label"] in classes and res["model"] == "vaanet"
    assert set(res["probabilities"]) == set(classes)
    assert abs(sum(res["probabilities"].values()) - 1) < 1e-3
    assert res["confidence"] == max(res["probabilities"].values())
    assert res["timeline"] and all(s["end"] > s["start"] >= 0 for s in res["timeline"])
    assert res["duration"] > 0 and res["video"] == "clip one.mp4"
    assert res.get("sentiment") in ("positive", "negative")
    assert r.headers["content-type"].startswith("application/json")


def test_client_file_name_is_never_a_path(server, videos, tmp_path):
    r = post_file(server.url, "../../../evil/..\\x.mp4", videos[1].read_bytes())
    assert r.status == 200, r.body
    assert r.json["video"] == "x.mp4"
    assert not (server.tmp_dir.parent / "evil").exists() and not server.files_left()


def test_non_video_is_415(server, tmp_path):
    for name, data in [("notes.txt", b"hello, this is not a video\n" * 50),
                       ("image.mp4", b"\x89PNG\r\n\x1a\n" + bytes(2000)),
                       ("x.mp4", b"<html><body>not a video</body></html>")]:
        r = post_file(server.url, name, data)
        assert r.status == 415, (name, r.status, r.body)
        assert r.json["error"]["code"] == "unsupported_media_type" and name in r.json["error"]["message"]
    # a real audio file is refused by a video model, before decoding
    wav = tmp_path / "tone.wav"
    write_wav(wav, np.sin(np.arange(16000) * 0.05).astype(np.float32) * 0.3, 16000)
    r = post_file(server.url, "tone.wav", wav.read_bytes())
    assert r.status == 415 and "wav" in r.json["error"]["message"]


def test_empty_and_malformed_requests_are_400(server, videos):
    r = post_file(server.url, "empty.mp4", b"")
    assert r.status == 400 and r.json["error"]["code"] == "empty_upload"
    r = post_file(server.url, "clip.mp4", videos[0].read_bytes(), field_name="video")
    assert r.status == 400 and r.json["error"]["code"] == "missing_file"
    r = request(f"{server.url}/predict", "POST", videos[0].read_bytes(), {"Content-Type": "video/mp4"})
    assert r.status == 400 and r.json["error"]["code"] == "bad_request"
    r = request(f"{server.url}/predict", "POST", b"garbage", {"Content-Type": "multipart/form-data; boundary=xyz"})
    assert r.status == 400 and r.json["error"]["code"] == "bad_request"


def test_corrupt_video_is_422(server, videos):
    data = videos[0].read_bytes()
    assert data[4:8] == b"ftyp"
    for name, bad in [("truncated.mp4", data[: len(data) // 3]),
                      ("garbage.mp4", data[:64] + np.random.default_rng(0).integers(0, 256, 30000, dtype=np.uint8).tobytes())]:
        r = post_file(server.url, name, bad)
        assert r.status == 422, (name, r.status, r.body)
        err = r.json["error"]
        assert err["code"] == "undecodable_media" and err["message"].startswith(name)
        assert str(server.tmp_dir) not in err["message"] and "upload-" not in err["message"]


def test_video_without_audio_is_422(server, tmp_path):
    silent = tmp_path / "silent.mp4"
    write_video(silent, np.full((24, 32, 32, 3), 90, np.uint8), 12)
    r = post_file(server.url, "silent.mp4", silent.read_bytes())
    assert r.status == 422 and "audio" in r.json["error"]["message"], r.body


# --------------------------------------------------------------------------------- info and errors
def test_health_and_models(server, trained, videos):
    h = get_json(server.url, "/health")
    assert h["status"] == "ok" and h["queue"]["capacity"] == 4 and h["queue"]["workers"] == 2
    assert h["queue"]["admitted"] == 0
    assert post_file(server.url, "counted.mp4", videos[0].read_bytes()).status == 200
    after = get_json(server.url, "/health")["requests"]  # one more success, nothing else counted
    assert after == {**h["requests"], "ok": h["requests"]["ok"] + 1}
    m = get_json(server.url, "/models")
    assert m["loaded"]["name"] == "vaanet" and m["loaded"]["classes"] == _classes(trained)
    assert m["loaded"]["engine"] == "torch" and m["loaded"]["input_keys"] == ["video", "audio"]
    assert Path(m["loaded"]["checkpoint"]) == Path(trained.best_dir)
    assert "vaanet" in m["registered"]


def test_unknown_routes_and_methods_are_json_errors(server):
    r = request(f"{server.url}/nope")
    assert r.status == 404 and r.json["error"]["code"] == "not_found"
    r = request(f"{server.url}/predict")
    assert r.status == 405 and r.json["error"]["code"] == "method_not_allowed" and "POST" in r.headers.get("allow", "")
    r = request(f"{server.url}/health", "DELETE")
    assert r.status == 405 and r.headers["content-type"].startswith("application/json")
    r = request(f"{server.url}/static/../deploy/server.py")
    assert r.status == 404 and "error" in r.json


def test_page_and_its_files_are_served(server):
    r = request(server.url + "/")
    assert r.status == 200 and r.headers["content-type"].startswith("text/html")
    page = r.body.decode()
    for needle in ('id="file"', 'id="label"', 'id="curve"', 'id="probabilities"', "/static/app.js", "/static/style.css"):
        assert needle in page
    assert "http://" not in page and "https://" not in page  # nothing loaded from elsewhere
    for f in ("app.js", "style.css"):
        r = request(f"{server.url}/static/{f}")
        assert r.status == 200 and len(r.body) > 100
    assert "default-src 'self'" in r.headers["content-security-policy"]


def test_upload_folder_is_empty_after_the_requests(server):
    assert wait_until(lambda: get_json(server.url, "/health")["queue"]["admitted"] == 0)
    assert server.files_left() == []
    assert len(list(server.tmp_dir.iterdir())) == 1  # the server's private folder, nothing else


# ------------------------------------------------------------------------------------- limits
def test_upload_limit_is_413_and_shutdown_removes_the_folder(trained, videos, tmp_path):
    big = b"".join(v.read_bytes() for v in videos)[:300_000]
    assert len(big) == 300_000
    with ServerProcess(trained.best_dir, tmp_path / "tmp", tmp_path / "server.log", "--max-upload-mb", "0.05") as srv:
        r = post_file(srv.url, "big.mp4", big)  # refused from its Content-Length, before reading it
        assert r.status == 413 and r.json["error"]["code"] == "upload_too_large", r.body
        r = post_file(srv.url, "big.mp4", big, chunked=True)  # no Content-Length: stopped while streaming
        assert r.status == 413 and r.json["error"]["code"] == "upload_too_large", r.body
        r = post_file(srv.url, "small.txt", b"not a video" * 100)  # under the limit: the content check answers
        assert r.status == 415
        assert get_json(srv.url, "/health")["status"] == "ok"
        assert srv.files_left() == []
        private = list(srv.tmp_dir.iterdir())
        assert len(private) == 1 and private[0].name.startswith("affectkit-serve-")
    assert srv.proc.returncode in (0, -15), srv.log()  # uvicorn re-raises SIGTERM after a clean shutdown
    assert "Application shutdown complete" in srv.log()
    assert list(srv.tmp_dir.iterdir()) == []


@pytest.fixture(scope="module")
def slow_video(tmp_path_factory):
    """A 320x240 noise video of 6 s (a few MB): each request takes a noticeable time to upload and decode."""
    path = tmp_path_factory.mktemp("slow") / "noise.mp4"
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (6, 240, 320, 3), dtype=np.uint8)
    frames = np.stack([np.roll(base[i % 6], 3 * i, axis=1) for i in range(6 * 24)])
    audio = (0.2 * np.sin(np.arange(6 * 16000) * 2 * np.pi * 440 / 16000)).astype(np.float32)
    write_video(path, frames, 24, audio, 16000)
    return path


def test_queue_bound_gives_503_and_the_server_stays_healthy(trained, videos, slow_video, tmp_path):
    with ServerProcess(trained.best_dir, tmp_path / "tmp", tmp_path / "server.log", "--queue-size", "1", "--workers", "1") as srv:
        # 1. deterministic: an upload in progress holds the only place; everything else is refused at once
        held = SlowUpload(srv.url, "held.mp4", videos[0].read_bytes())
        held.begin(1024)
        assert wait_until(lambda: get_json(srv.url, "/health")["queue"]["admitted"] == 1)
        for _ in range(3):
            r = post_file(srv.url, "other.mp4", videos[1].read_bytes())
            assert r.status == 503 and r.json["error"]["code"] == "queue_full", r.body
            assert int(r.headers["retry-after"]) >= 1
        r = held.finish()
        assert r.status == 200 and r.json["video"] == "held.mp4"

        # 2. six requests at once: one (or more, once the first is done) succeed, the rest get 503
        data = slow_video.read_bytes()
        barrier = threading.Barrier(6)
        statuses, problems = [], []

        def client():
            barrier.wait()
            try:
                r = post_file(srv.url, "noise.mp4", data, timeout=120)
                statuses.append(r.status)
                if r.status == 503:
                    assert r.headers.get("retry-after") and r.json["error"]["code"] == "queue_full"
            except Exception as err:  # noqa: BLE001 - reported below
                problems.append(repr(err))

        threads = [threading.Thread(target=client) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(180)
        assert not problems, problems
        assert sorted(set(statuses)) == [200, 503], statuses
        assert len(statuses) == 6

        # 3. a client that goes away mid-upload frees its place and its file
        gone = SlowUpload(srv.url, "gone.mp4", data)
        gone.begin(200_000)
        assert wait_until(lambda: get_json(srv.url, "/health")["queue"]["admitted"] == 1)
        gone.abort()
        assert wait_until(lambda: get_json(srv.url, "/health")["queue"]["admitted"] == 0)
        h = get_json(srv.url, "/health")
        assert h["status"] == "ok" and h["requests"]["rejected_busy"] >= 3 and h["requests"]["server_errors"] == 0
        assert post_file(srv.url, "again.mp4", videos[2].read_bytes()).status == 200
        assert wait_until(lambda: srv.files_left() == [])


# ---------------------------------------------------------------------------- helpers, no server
def test_sniff_media_recognises_containers():
    assert sniff_media(b"\x00\x00\x00\x20ftypisom" + bytes(20))[1] == "video"
    assert sniff_media(b"\x00\x00\x00\x20ftypM4A " + bytes(20))[1] == "audio"
    assert sniff_media(b"\x1a\x45\xdf\xa3" + bytes(20))[0] == "matroska/webm"
    assert sniff_media(b"RIFF\x00\x00\x00\x00AVI LIST")[0] == "avi"
    assert sniff_media(b"RIFF\x00\x00\x00\x00WAVEfmt ")[1] == "audio"
    assert sniff_media((b"\x47" + bytes(187)) * 3)[0] == "mpeg-ts"
    assert sniff_media(b"FLV\x01\x05" + bytes(10))[0] == "flv"
    assert sniff_media(b"OggS\x00\x02" + bytes(20))[0] == "ogg"
    assert sniff_media(b"ID3\x04\x00" + bytes(20)) == ("mp3", "audio")
    assert sniff_media(b"fLaC" + bytes(20)) == ("flac", "audio")
    for junk in (b"", b"hello world", b"\x89PNG\r\n\x1a\n", b"%PDF-1.7", b"PK\x03\x04", b"RIFF\x00\x00\x00\x00WEBPVP8 ",
                 b"\x47hello" + bytes(300)):
        assert sniff_media(junk) is None, junk


def test_display_name_keeps_only_the_last_component():
    assert display_name("../../etc/passwd") == "passwd"
    assert display_name(b"C:\\Users\\me\\clip.mp4") == "clip.mp4"
    assert display_name("a\x00b\r\n.mp4") == "ab.mp4"
    assert display_name("..") == "upload" and display_name(None) == "upload"


def test_audio_only_model_accepts_audio_files(videos, tmp_path):
    """A model whose input is audio only takes audio files (and the audio of videos)."""
    from affectkit import create_model, list_models
    from affectkit.config import load_config
    from affectkit.engine.checkpoint import save_checkpoint
    from affectkit.engine.tasks import build_task

    if "audio_cnn" not in list_models():
        pytest.skip("no audio-only model registered")
    cfg = load_config("audio/ravdess_cnn_logmel.yaml")
    classes = ["neutral", "happy", "sad", "angry"]
    args = build_task(cfg, classes, None).model_args()
    model = create_model(cfg.model.name, **args).eval()
    ckpt = save_checkpoint(tmp_path / "audio_ckpt", model, {
        "task": cfg.task, "model": {"name": cfg.model.name, "args": args}, "classes": classes, "polarity": None,
        "input": cfg.to_dict()["input"], "config": cfg.to_dict()}, {})
    wav = tmp_path / "voice.wav"
    write_wav(wav, (0.3 * np.sin(np.arange(32000) * 0.05)).astype(np.float32), 16000)
    with ServerProcess(ckpt, tmp_path / "tmp", tmp_path / "server.log") as srv:
        m = get_json(srv.url, "/models")["loaded"]
        assert m["input_keys"] == ["audio"] and m["accepts"] == "video or audio"
        for name, data in [("voice.wav", wav.read_bytes()), ("clip.mp4", videos[0].read_bytes())]:
            r = post_file(srv.url, name, data)
            assert r.status == 200, r.body
            assert r.json["label"] in classes and r.json["video"] == name
        r = post_file(srv.url, "notes.txt", b"not audio either" * 50)
        assert r.status == 415 and "audio" in r.json["error"]["message"]
        assert srv.files_left() == []
