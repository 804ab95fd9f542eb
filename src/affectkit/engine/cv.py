"""Cross-validation protocols over the one trainer: :func:`run_folds` (one training per fold, each tested on its
own test split, mean and spread over the folds), :func:`group_folds` / :func:`group_cross_validate` (the
speaker-independent k-fold by whole groups, e.g. RAVDESS actors: ``affectkit cv``). The gait k-fold
(:func:`affectkit.engine.gait.cross_validate`, ``affectkit gait-cv``) runs on :func:`run_folds` too."""
from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ConfigError

__all__ = ["run_folds", "group_folds", "group_cross_validate", "format_folds"]


def run_folds(config, overrides: list[str] | None, fold_overrides: list[list[str]], *, drop: tuple[str, ...] = (),
              info: list[dict] | None = None) -> dict[str, Any]:
    """One training per fold (``overrides`` + that fold's ``fold_overrides``), each evaluated on its test split;
    every fold's test metrics and the mean and spread over the folds (see :func:`cross_validate`). ``info``:
    per fold, what to record beside its metrics (e.g. its groups)."""
    import time
    from pathlib import Path

    from .evaluate import evaluate
    from .trainer import train

    overrides = list(overrides or [])
    folds = len(fold_overrides)
    name = next((o.split("=", 1)[1] for o in overrides if o.startswith("output.run_name=")), None)
    if not name:
        stem = Path(str(config)).stem if config is not None else "cv"
        name = f"{stem}-cv-{time.strftime('%Y%m%d-%H%M%S')}"
    base = [o for o in overrides if not o.startswith(("output.run_name=", *drop))]
    runs = []
    for k, extra in enumerate(fold_overrides):
        result = train(config, base + list(extra) + [f"output.run_name={name}-fold{k}"])
        test = evaluate(result.best_dir, split="test")
        runs.append({"fold": k, **((info or [{}] * folds)[k]), "run_dir": str(result.run_dir), "best_epoch": result.best_epoch,
                     "best_val": result.best_metric,
                     "test": {m: v for m, v in test.items() if isinstance(v, (int, float)) and not isinstance(v, bool)},
                     "per_class_accuracy": test.get("per_class_accuracy")})
    out: dict[str, Any] = {"config": str(config), "overrides": base, "folds": runs, "num_folds": folds}
    for metric in ("accuracy", "macro_f1", "accuracy_posture", "accuracy_movement"):
        vals = np.array([r["test"].get(metric, np.nan) for r in runs], dtype=np.float64)
        if np.isnan(vals).all():
            continue
        out[f"{metric}_mean"] = float(np.nanmean(vals))
        out[f"{metric}_std"] = float(np.nanstd(vals))
        if metric == "accuracy":
            out["accuracy_sample_std"] = float(np.nanstd(vals, ddof=1)) if folds > 1 else 0.0
    return out


def group_folds(groups: list, folds: int, val_groups: int = 2) -> list[dict[str, list]]:
    """Speaker-independent folds over whole groups (e.g. actors): the sorted groups cut into ``folds``
    consecutive blocks, each block a test split once; its validation groups are the ``val_groups`` groups that
    follow the block (cyclically), the others train. RAVDESS' 12 actors, 4 folds, 2 validation actors: test
    01-03, val 04-05, train 06-12; test 04-06, val 07-08, ...; consecutive actors alternate male and female,
    so every split holds both."""
    groups = sorted(dict.fromkeys(groups), key=lambda g: (int(g) if str(g).lstrip("-").isdigit() else float("inf"), str(g)))
    n = len(groups)
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
        raise ConfigError(f"folds {folds!r}: expected an integer >= 2")
    if n < folds + val_groups + 1:
        raise ConfigError(f"{n} groups cannot make {folds} test folds with {val_groups} validation group(s) and a training group")
    bounds = [round(k * n / folds) for k in range(folds + 1)]
    out = []
    for k in range(folds):
        test = groups[bounds[k]:bounds[k + 1]]
        rest = groups[bounds[k + 1]:] + groups[:bounds[k]]
        out.append({"test": test, "val": rest[:val_groups], "train": rest[val_groups:]})
    return out


def group_cross_validate(config, overrides: list[str] | None = None, *, folds: int = 4, val_groups: int = 2) -> dict[str, Any]:
    """The speaker-independent k-fold protocol: the groups of ``data.group_by`` (RAVDESS: ``actor``) in
    :func:`group_folds`, one training per fold choosing its epoch on the fold's validation groups only, tested on
    its test groups. Returns :func:`run_folds`' result with each fold's groups. ``affectkit cv`` runs it."""
    from ..config import load_config
    from ..data.datasets import build_index

    cfg = load_config(config, [o for o in (overrides or []) if not o.startswith("data.splits")])
    if not cfg.data.group_by:
        raise ConfigError(f"{config}: the group k-fold needs data.group_by (e.g. actor)")
    # the groups present, read from the data with every group in training
    probe = load_config(config, [o for o in (overrides or []) if not o.startswith("data.splits")] +
                        ["data.splits={}", "data.val_fraction=0.0"])
    index = build_index(probe.data)
    groups = sorted({r.extra.get(cfg.data.group_by) for r in index.records if r.extra.get(cfg.data.group_by) is not None})
    plan = group_folds(groups, folds, val_groups)
    fold_overrides = [[f"data.splits={{train: {list(p['train'])}, val: {list(p['val'])}, test: {list(p['test'])}}}"] for p in plan]
    result = run_folds(config, overrides, fold_overrides, drop=("data.splits",), info=[{"groups": p} for p in plan])
    result["group_by"] = cfg.data.group_by
    return result


def format_folds(result: dict[str, Any]) -> str:
    """A table of :func:`group_cross_validate`'s result: one line per fold (its test groups), then mean +- std."""
    lines = [f"{'fold':>4}  {'test groups':<14} {'val groups':<10} {'best val':>8}  {'test acc':>8}  {'macro F1':>8}  {'samples':>7}"]
    for r in result["folds"]:
        t, g = r["test"], r.get("groups", {})
        fmt = lambda xs: ",".join(str(x) for x in xs)  # noqa: E731
        best = r.get("best_val")
        lines.append(f"{r['fold']:>4}  {fmt(g.get('test', [])):<14} {fmt(g.get('val', [])):<10} "
                     f"{best if best is not None else float('nan'):8.4f}  {t.get('accuracy', float('nan')):8.4f}  "
                     f"{t.get('macro_f1', float('nan')):8.4f}  {int(t.get('num_samples', 0)):>7}")
    lines.append(f"{result['num_folds']}-fold test accuracy: {result['accuracy_mean']:.4f} +- {result['accuracy_std']:.4f} "
                 f"(std over folds; sample std {result['accuracy_sample_std']:.4f})")
    if "macro_f1_mean" in result:
        lines.append(f"  macro F1: {result['macro_f1_mean']:.4f} +- {result['macro_f1_std']:.4f}")
    return "\n".join(lines)
