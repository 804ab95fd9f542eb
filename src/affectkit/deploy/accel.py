"""One fast CPU inference path for every registered model, chosen per machine and checked before use.

:func:`accelerate` takes any model in eval mode and returns a :class:`FastModel` with the same call
signature and output. It tries *backends* in an order chosen from what this CPU and the installed
libraries offer, builds each one, and keeps the first whose output agrees with the plain fp32
model on the model's ``example_inputs()`` (same top-1 for every item, largest class-probability
difference within the backend's tolerance). What was tried, what was chosen and why is recorded
in :attr:`FastModel.fast_info` (the predictor puts it in every result; ``affectkit doctor``
prints the order this machine would try).

Backends (see :data:`BACKENDS`; measured in ``benchmarks/bench_fast.py``):

- ``inductor``: ``torch.compile`` (inductor) with weight freezing on a BatchNorm-folded,
  channels-last copy. Any model, any x86 CPU (AVX2 or AVX-512); the C++ kernels are compiled on the
  first call (seconds to a minute for a full-size 3D ResNet; PyTorch's on-disk FX graph cache makes
  later processes faster). Exact up to float rounding.
- ``inductor-bf16``: the same under bf16 autocast, where the CPU computes bf16 natively (AMX or
  AVX-512 bf16); tolerance 0.05.
- ``vaanet-int8``: VAANet's hand-built int8 3D trunk on oneDNN u8 x s8 convolutions
  (:mod:`affectkit.deploy.fast`), where the CPU has VNNI or AMX-int8. It stays because the general
  int8 route does not cover it: PyTorch 2's x86 quantiser (now in torchao) annotates 2D
  convolutions and linears, not the 3D convolutions that carry VAANet's cost. Tolerance 0.05.
- ``trunk-int8``: the same int8 3D trunk (and int8 audio ResNet) for the other models with a 3D ResNet
  trunk fed through ``normalize_video`` (CTEN, CTEN-visual): :class:`~affectkit.deploy.fast.FastTrunkModel`;
  the model's own heads run BN-folded in fp32. Tolerance 0.05.
- ``eager-folded``: BatchNorm folded into the convolutions, channels-last weights, eager mode.
  Always available (the fallback; exact up to rounding).

``auto`` tries ``vaanet-int8`` (VAANet on VNNI/AMX-int8: 4.9x the eager fp32 forward on a 2-core
AMX Xeon), then ``trunk-int8`` (CTEN: 2.97x on a 2-core AVX-512 VNNI EPYC without AMX, where
``inductor-bf16`` gave 2.4x), then ``inductor-bf16`` (native bf16 only: 4.4x for VAANet, 4.3x for CTEN there), then
``inductor`` (any CPU with a compiler: 1.4x for VAANet there), then ``eager-folded`` (1.2x).

``accelerate(model, backend="inductor")`` forces one backend (still checked; ``check=False`` skips
the check). The environment variable ``AFFECTKIT_FAST_BACKEND`` sets the backend for ``auto``.
"""
from __future__ import annotations

import contextlib
import copy
import functools
import logging
import os
import platform
import shutil
import time
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn

from ..errors import AffectkitError
from ..models.layout import to_channels_last
from ..registry import model_input_keys
from .fast import cpu_flags, fold_batchnorm, int8_available, tune_allocator

log = logging.getLogger(__name__)

EXACT_TOLERANCE = 1e-3  # largest class-probability difference of an fp32 backend (float rounding)
LOW_PRECISION_TOLERANCE = 0.05  # bf16 / int8 backends


# --------------------------------------------------------------------------------------- machine
@functools.lru_cache(maxsize=1)
def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cpu_summary() -> dict[str, Any]:
    """The CPU model and the vector/matrix features the backends care about."""
    flags = cpu_flags()
    wanted = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8", "amx_tile")
    return {"model": cpu_model(), "cores": os.cpu_count(), "flags": [f for f in wanted if f in flags],
            "torch_cpu_capability": _cpu_capability()}


def _cpu_capability() -> str:
    try:
        return str(torch.backends.cpu.get_cpu_capability())
    except Exception:  # noqa: BLE001 - older torch
        return "unknown"


def native_bf16() -> bool:
    return bool(cpu_flags() & {"avx512_bf16", "amx_bf16"})


@functools.lru_cache(maxsize=1)
def inductor_available() -> tuple[bool, str]:
    """torch.compile's CPU backend needs a C++ compiler and a working inductor import."""
    if not any(shutil.which(c) for c in ("g++", "c++", "clang++")):
        return False, "no C++ compiler (g++/clang++) on PATH: inductor cannot build its kernels"
    try:
        import torch._inductor.config  # noqa: F401
    except Exception as err:  # noqa: BLE001
        return False, f"torch inductor unavailable ({type(err).__name__}: {err})"
    return True, "torch.compile (inductor) with a C++ compiler"


# --------------------------------------------------------------------------------------- backends
@dataclass
class Backend:
    name: str
    tolerance: float
    build: Callable[[nn.Module], nn.Module]
    available: Callable[[nn.Module], tuple[bool, str]]
    description: str = ""


def _folded_copy(model: nn.Module) -> nn.Module:
    fast = to_channels_last(fold_batchnorm(copy.deepcopy(model)).eval())
    for p in fast.parameters():
        p.requires_grad_(False)
    return fast


class _Compiled(nn.Module):
    """A BN-folded copy run through ``torch.compile`` with inductor's weight freezing (the weights
    become constants of the compiled graph), optionally under bf16 autocast."""

    def __init__(self, model: nn.Module, *, bf16: bool):
        super().__init__()
        self.inner = _folded_copy(model)
        self.bf16 = bf16
        self.compiled = torch.compile(self.inner, backend="inductor", dynamic=None)

    def forward(self, **inputs):
        import torch._inductor.config as inductor_config

        ctx = torch.autocast("cpu", dtype=torch.bfloat16) if self.bf16 else contextlib.nullcontext()
        with torch.no_grad(), inductor_config.patch(freezing=True), ctx:
            out = self.compiled(**inputs)
        return _float_output(out)


def _float_output(out):
    """Cast a model output's tensors back to float32 (bf16 backends)."""
    if hasattr(out, "logits"):
        out.logits = out.logits.float()
        if getattr(out, "temporal_attention", None) is not None:
            out.temporal_attention = out.temporal_attention.float()
        if getattr(out, "extras", None):
            out.extras = {k: (v.float() if torch.is_tensor(v) and v.is_floating_point() else v) for k, v in out.extras.items()}
    return out


def _on_cpu(model: nn.Module) -> bool:
    return all(p.device.type == "cpu" for p in model.parameters())


def _inductor_ok(model):
    if not _on_cpu(model):
        return False, "the model is not on the CPU"
    return inductor_available()


def _inductor_bf16_ok(model):
    ok, why = _inductor_ok(model)
    if not ok:
        return ok, why
    if not native_bf16():
        return False, "the CPU has no native bf16 (AVX-512 bf16 or AMX)"
    return True, "native bf16 (AVX-512 bf16/AMX) and inductor"


def _vaanet_int8_ok(model):
    from ..models.vaanet import VAANet

    if not isinstance(model, VAANet):
        return False, "only for VAANet"
    if not _on_cpu(model):
        return False, "the model is not on the CPU"
    if not int8_available():
        return False, "no VNNI/AMX-int8 or no oneDNN int8 convolutions in this PyTorch"
    return True, "VNNI/AMX-int8 and oneDNN int8 convolutions"


def _vaanet_int8(model):
    from .fast import FastVAANet

    return FastVAANet(model, precision="int8").eval()


def _trunk_int8_ok(model):
    from ..models.vaanet import VAANet
    from .fast import trunk_int8_supported

    if isinstance(model, VAANet):
        return False, "VAANet has its own int8 backend (vaanet-int8)"
    return trunk_int8_supported(model)


def _trunk_int8(model):
    from .fast import FastTrunkModel

    return FastTrunkModel(model).eval()


BACKENDS: dict[str, Backend] = {
    "vaanet-int8": Backend("vaanet-int8", LOW_PRECISION_TOLERANCE, _vaanet_int8, _vaanet_int8_ok,
                           "VAANet's int8 3D trunk (oneDNN u8 x s8), BN folded"),
    "trunk-int8": Backend("trunk-int8", LOW_PRECISION_TOLERANCE, _trunk_int8, _trunk_int8_ok,
                          "int8 3D ResNet trunk and audio ResNet (oneDNN u8 x s8), other layers BN-folded fp32"),
    "inductor-bf16": Backend("inductor-bf16", LOW_PRECISION_TOLERANCE, lambda m: _Compiled(m, bf16=True), _inductor_bf16_ok,
                             "torch.compile + freezing under bf16 autocast"),
    "inductor": Backend("inductor", EXACT_TOLERANCE, lambda m: _Compiled(m, bf16=False), _inductor_ok,
                        "torch.compile (inductor) + freezing, fp32"),
    "eager-folded": Backend("eager-folded", EXACT_TOLERANCE, _folded_copy, lambda m: (True, "always"),
                            "BatchNorm folded, channels-last, eager fp32"),
}


def backend_order() -> list[str]:
    """The order ``auto`` tries the backends in on this machine (the faster first, as measured in
    ``benchmarks/bench_fast.py``; a backend a model cannot use is passed over)."""
    forced = os.environ.get("AFFECTKIT_FAST_BACKEND")
    if forced:
        if forced not in BACKENDS:
            raise AffectkitError(f"AFFECTKIT_FAST_BACKEND={forced!r}: unknown backend; backends: {', '.join(BACKENDS)}")
        return [forced, "eager-folded"] if forced != "eager-folded" else [forced]
    return ["vaanet-int8", "trunk-int8", "inductor-bf16", "inductor", "eager-folded"]


def machine_report() -> dict[str, Any]:
    """What ``affectkit doctor`` prints: the CPU, the order ``auto`` tries, and each backend's
    availability here (model-specific backends: whether this machine could run them)."""
    probe = nn.Linear(1, 1)
    rows = {}
    for name, b in BACKENDS.items():
        if name in ("vaanet-int8", "trunk-int8"):
            ok = int8_available()
            scope = "VAANet only" if name == "vaanet-int8" else "models with a 3D ResNet trunk: CTEN, CTEN-visual"
            why = f"VNNI/AMX-int8 and oneDNN int8 convolutions ({scope})" if ok else "no VNNI/AMX-int8 or no oneDNN int8 convolutions"
        else:
            ok, why = b.available(probe)
        rows[name] = {"available": ok, "why": why}
    return {"cpu": cpu_summary(), "order": backend_order(), "backends": rows}


# --------------------------------------------------------------------------------------- checking
def _outputs(model, inputs) -> torch.Tensor:
    with torch.inference_mode():
        out = model(**inputs)
    logits = out.logits if hasattr(out, "logits") else out[0]
    return torch.softmax(logits.float(), dim=-1)


def agreement(reference: torch.Tensor, candidate: torch.Tensor) -> dict[str, Any]:
    """Top-1 agreement and the largest class-probability difference of two (B, K) probability tensors."""
    return {"top1_equal": bool(torch.equal(reference.argmax(-1), candidate.argmax(-1))),
            "max_prob_diff": float((reference - candidate).abs().max()),
            "batch": int(reference.shape[0])}


class FastModel(nn.Module):
    """The chosen backend's module behind the model's own signature; ``fast_info`` says which and why.
    Reads of other attributes (``input_keys``, ``affectkit_config`` ...) go to the original model."""

    def __init__(self, model: nn.Module, impl: nn.Module, info: dict[str, Any]):
        super().__init__()
        self.impl = impl
        self.fast_info = info
        self.__dict__["_original"] = model

    def forward(self, *args, **kwargs):
        with torch.no_grad():
            if self.fast_info.get("runtime_fallback"):
                return self._original(*args, **kwargs)
            try:
                return self.impl(*args, **kwargs)
            except Exception as err:  # noqa: BLE001 - e.g. a compiled graph failing to recompile for new shapes
                # the backend passed its check on the example inputs but fails on these: the plain model answers
                # from now on (same results as without --fast), and every result says so
                why = f"{type(err).__name__}: {str(err).strip().splitlines()[0][:300] if str(err).strip() else ''}"
                self.fast_info["runtime_fallback"] = {"to": "plain model (fp32, eager)", "error": why,
                                                      "input_shapes": {k: list(v.shape) for k, v in kwargs.items()
                                                                       if isinstance(v, torch.Tensor)}}
                log.warning("fast path: backend %s failed on inputs of new shapes (%s); the plain model answers "
                            "from now on", self.fast_info.get("backend"), why)
                return self._original(*args, **kwargs)

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            original = self.__dict__.get("_original")
            if original is None or name.startswith("__"):
                raise
            return getattr(original, name)

    def train(self, mode: bool = True) -> "FastModel":
        if mode:
            raise RuntimeError("the fast path is inference-only")
        return super().train(False)


def _other_length_inputs(model: nn.Module) -> dict | None:
    """Example inputs at another length for a variable-length model (TSL-Net); None for fixed-shape models."""
    from ..registry import other_length_kwargs

    kw = other_length_kwargs(model)
    return model.example_inputs(1, **kw) if kw else None


def accelerate(model: nn.Module, *, backend: str = "auto", example_inputs: dict | None = None,
               check: bool = True, batch_size: int = 1) -> FastModel:
    """The fast inference version of ``model`` (eval mode; ``model`` is not changed). See the module
    docstring. ``example_inputs`` default to ``model.example_inputs(batch_size)``; the check runs the
    plain model and the candidate on them (the first call of a compiled backend compiles it, so the
    returned model is warm for inputs of those shapes)."""
    if model.training:
        raise AffectkitError("the fast path needs a model in eval mode (model.eval())")
    model_input_keys(model)  # a clear error for a model that declares no inputs
    tune_allocator()
    if backend == "auto":
        order = backend_order()
    elif backend in BACKENDS:
        order = [backend]
    else:
        raise AffectkitError(f"fast backend {backend!r} unknown; backends: auto, {', '.join(BACKENDS)}")
    if example_inputs is None and hasattr(model, "example_inputs"):
        example_inputs = model.example_inputs(batch_size)
    if check and example_inputs is None:
        raise AffectkitError(f"{type(model).__name__}: the fast path check needs example_inputs() or example_inputs=")
    reference = _outputs(model, example_inputs) if check else None
    # a model with variable-length inputs (``export_dynamic_axes``, e.g. TSL-Net's steps) is also checked at a
    # second length: a compiled backend must survive the recompile that real inputs of other lengths trigger
    second = _other_length_inputs(model) if check else None
    reference2 = _outputs(model, second) if second is not None else None
    tried: list[dict[str, Any]] = []
    for name in order:
        b = BACKENDS[name]
        ok, why = b.available(model)
        entry: dict[str, Any] = {"backend": name, "available": ok, "why": why}
        tried.append(entry)
        if not ok:
            continue
        t0 = time.perf_counter()
        try:
            impl = b.build(model)
            if check:
                got = _outputs(impl, example_inputs)  # compiles a compiled backend (first call)
                entry.update(agreement(reference, got), tolerance=b.tolerance)
                if second is not None:
                    other = agreement(reference2, _outputs(impl, second))
                    entry.update(top1_equal=entry["top1_equal"] and other["top1_equal"],
                                 max_prob_diff=max(entry["max_prob_diff"], other["max_prob_diff"]))
        except Exception as err:  # noqa: BLE001 - a backend that fails is passed over, with the reason
            entry.update(ok=False, error=f"{type(err).__name__}: {str(err)[:300]}")
            log.warning("fast path: backend %s failed (%s); trying the next", name, entry["error"])
            continue
        entry["first_call_seconds"] = round(time.perf_counter() - t0, 3)
        if check and not (entry["top1_equal"] and entry["max_prob_diff"] <= b.tolerance):
            entry["ok"] = False
            log.warning("fast path: backend %s disagrees with fp32 (top-1 equal %s, max probability difference %.4g > %g); trying the next",
                        name, entry["top1_equal"], entry["max_prob_diff"], b.tolerance)
            continue
        entry["ok"] = True
        info = {"backend": name, "description": b.description, "reason": why, "checked": check,
                "tolerance": b.tolerance, "agreement": {k: entry[k] for k in ("top1_equal", "max_prob_diff", "batch") if k in entry},
                "first_call_seconds": entry["first_call_seconds"], "tried": tried, "cpu": cpu_summary(),
                "torch": torch.__version__}
        log.info("fast path: %s (%s)", name, why)
        return FastModel(model, impl, info).eval()
    raise AffectkitError("no fast backend agreed with the plain model: " +
                         "; ".join(f"{t['backend']}: {t.get('error') or t.get('why')}" for t in tried))
