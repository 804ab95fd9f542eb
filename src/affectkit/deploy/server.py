"""``affectkit serve``: the HTTP service and its web page (being written: see issue 3)."""
from __future__ import annotations

import argparse

from ..errors import AffectkitError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", "-c", required=True, help="checkpoint folder, run folder, or .onnx file (with --engine onnx)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--device", default="cpu")
    p.add_argument("--engine", choices=("torch", "onnx"), default="torch")
    p.add_argument("--fast", action="store_true", help="fast CPU path (torch engine)")
    p.add_argument("--allow-silent-audio", action="store_true")
    p.add_argument("--max-upload-mb", type=float, default=200.0, help="largest accepted upload (default 200 MB)")
    p.add_argument("--queue-size", type=int, default=8, help="requests waiting or running at once; more get 503")
    p.add_argument("--workers", type=int, default=1, help="inference threads")


def run_from_args(args) -> int:
    raise AffectkitError("serve is not implemented yet")
