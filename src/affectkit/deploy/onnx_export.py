"""``affectkit export onnx``: being written (issue 3)."""
from __future__ import annotations

import argparse

from ..errors import AffectkitError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="checkpoint folder or run folder")
    p.add_argument("-o", "--out", required=True, help="the .onnx file to write")
    p.add_argument("--opset", type=int, default=18)


def run_from_args(args) -> int:
    raise AffectkitError("export onnx is not implemented yet")
