"""Speed of the Whisper speech front end (affectkit.data.speech_encoder) on real speech.

    python benchmarks/bench_speech_encoder.py --data ../shared/data/ravdess_dev --files 60 \\
        --out benchmarks/results/bench_speech_encoder.json

Per setting (unpadded: the default; padded to Whisper's 30 s windows): seconds of audio encoded per second of
wall time over ``--files`` RAVDESS recordings (decoding excluded: the waveforms are decoded first), and the
front end alone (the kit's log-mel). Prints one JSON document.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="../shared/data/ravdess_dev")
    ap.add_argument("--files", type=int, default=60)
    ap.add_argument("--out")
    args = ap.parse_args(argv)
    import torch

    from affectkit.data.audio import load_audio
    from affectkit.data.speech_encoder import WhisperEncoder, whisper_log_mel
    from affectkit.deploy.accel import cpu_summary

    files = sorted(Path(args.data).rglob("*.wav"))[: args.files]
    waves = [load_audio(str(f), 16000) for f in files]
    seconds = sum(w.size for w in waves) / 16000
    report = {"command": "python " + " ".join([sys.argv[0], *sys.argv[1:]]), "cpu": cpu_summary(),
              "threads": torch.get_num_threads(), "python": platform.python_version(), "files": len(files),
              "audio_seconds": round(seconds, 2), "loadavg_start": os.getloadavg(), "settings": {}}
    t = time.perf_counter()
    for w in waves:
        whisper_log_mel(w)
    report["log_mel_audio_s_per_s"] = round(seconds / (time.perf_counter() - t), 1)
    for pad in (False, True):
        t0 = time.perf_counter()
        enc = WhisperEncoder(pad_to_30s=pad)
        load_s = time.perf_counter() - t0
        t = time.perf_counter()
        for w in waves:
            enc.encode(w)
        wall = time.perf_counter() - t
        report["settings"]["padded_30s" if pad else "unpadded"] = {
            "load_seconds": round(load_s, 2), "wall_seconds": round(wall, 2),
            "audio_seconds_per_second": round(seconds / wall, 1), "seconds_per_file": round(wall / len(waves), 3)}
    report["loadavg_end"] = os.getloadavg()
    return emit(report, args.out)


def emit(report: dict, out: str | None) -> dict:
    """Print ``report`` as JSON and write it to ``out`` too (when given)."""
    text = json.dumps(report, indent=2)
    if out:
        Path(out).write_text(text + "\n")
    print(text)
    return report


if __name__ == "__main__":
    main()
