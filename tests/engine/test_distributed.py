"""Two ranks (gloo, CPU) deciding together: a batch one rank cannot use, a non-finite loss on one rank.
Neither may leave the other waiting forever in a collective."""
import json
import multiprocessing as mp
import os
import socket
import traceback

import pytest

from ..conftest import tiny_overrides


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _rank_main(rank: int, port: int, data: str, root: str, mode: str, result_file: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port), OMP_NUM_THREADS="1")
    import torch

    torch.set_num_threads(1)
    from affectkit.engine import trainer as trainer_mod
    from affectkit.engine.tasks import ClassificationTask

    original_batches, original_step = trainer_mod.Trainer._batches, ClassificationTask.train_step
    calls = {"n": 0}

    def batches(self, epoch):  # rank 1 gets no usable sample in its second batch
        for i, b in enumerate(original_batches(self, epoch)):
            yield None if (mode == "skip" and rank == 1 and i == 1) else b

    def train_step(self, model, batch):  # rank 1's loss is NaN at its second step
        out = original_step(self, model, batch)
        calls["n"] += 1
        if mode == "nan" and rank == 1 and calls["n"] == 2:
            out.loss = out.loss * float("nan")
        return out

    trainer_mod.Trainer._batches = batches
    ClassificationTask.train_step = train_step
    outcome = {"rank": rank}
    try:
        res = trainer_mod.train("vaanet/vaanet_synth.yaml", tiny_overrides(
            data, root, "train.epochs=1", "train.max_steps_per_epoch=3", "output.run_name=r", "train.grad_accum=2"))
        outcome.update(ok=True, step=res.history[-1]["step"], samples=res.history[-1]["train_samples"])
    except Exception as err:  # noqa: BLE001 - reported to the test
        outcome.update(ok=False, error=f"{type(err).__name__}: {err}", tb=traceback.format_exc()[-1500:])
    with open(result_file, "w") as fh:
        json.dump(outcome, fh)
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def _run_two(tiny_synth, tmp_path, mode):
    ctx = mp.get_context("spawn")
    port = _free_port()
    files = [tmp_path / f"rank{r}.json" for r in range(2)]
    procs = [ctx.Process(target=_rank_main, args=(r, port, str(tiny_synth), str(tmp_path / "runs"), mode, str(files[r])))
             for r in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
    hung = [p for p in procs if p.is_alive()]
    for p in hung:
        p.kill()
    assert not hung, f"{len(hung)} rank(s) still waiting after 300 s"
    return [json.loads(f.read_text()) for f in files]


@pytest.mark.slow
def test_a_batch_one_rank_cannot_use_is_skipped_by_all_ranks(tiny_synth, tmp_path):
    results = _run_two(tiny_synth, tmp_path, "skip")
    assert all(r["ok"] for r in results), results
    # 3 micro-batches, the second skipped everywhere: windows {1, 2(skipped)} and {3} -> 2 optimiser steps
    assert [r["step"] for r in results] == [2, 2]
    assert results[0]["samples"] == 2 * 2 * 8  # two batches of 8 on each of the two ranks
    summary = json.loads((tmp_path / "runs" / "r" / "train_summary.json").read_text())
    assert summary["ranks_in_sync"] is True


@pytest.mark.slow
def test_a_non_finite_loss_on_one_rank_stops_every_rank(tiny_synth, tmp_path):
    results = _run_two(tiny_synth, tmp_path, "nan")
    assert [r["ok"] for r in results] == [False, False], results
    for r in results:
        assert "loss is not finite at epoch 1 step 2 (rank(s) [1])" in r["error"], r
