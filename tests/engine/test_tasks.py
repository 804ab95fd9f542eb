"""The task interface, optimiser options and the learning-rate schedule (no training run needed)."""
import math

import pytest
import torch
from torch import nn

from affectkit.config import load_config
from affectkit.engine.tasks import TASKS, ClassificationTask, StepOutput, Task, build_task, model_inputs, register_task
from affectkit.engine.trainer import (build_optimizer, build_scheduler, optimizer_steps_per_epoch, parameter_groups)
from affectkit.errors import ConfigError
from affectkit.models.outputs import ClassifierOutput


def _cfg(*overrides):
    return load_config("vaanet/vaanet_synth.yaml", list(overrides))


# ------------------------------------------------------------------------------------ schedule
@pytest.mark.parametrize("batches,accum,expected", [(3, 2, 2), (4, 2, 2), (5, 2, 3), (1, 4, 1), (7, 1, 7)])
def test_optimizer_steps_count_the_partial_window(batches, accum, expected):
    assert optimizer_steps_per_epoch(batches, accum) == expected


def test_cosine_schedule_lasts_exactly_the_run():
    # 3 epochs of 3 micro-batches with accumulation 2: 2 optimiser steps an epoch (a floor division gave 1)
    cfg = _cfg("train.epochs=3", "train.scheduler=cosine", "train.lr=1.0", "train.warmup_epochs=0")
    steps = optimizer_steps_per_epoch(3, 2)
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = build_scheduler(cfg, opt, steps)
    lrs = []
    for _ in range(3 * steps):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(1.0)
    assert all(b < a for a, b in zip(lrs, lrs[1:])), lrs  # decreasing over the whole run, never flat at 0
    assert lrs[3] == pytest.approx(0.5)  # half-way through 6 steps
    assert lrs[-1] == pytest.approx(0.5 * (1 + math.cos(math.pi * 5 / 6)))
    assert opt.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)  # after the last step


def test_warmup_then_step_decay():
    cfg = _cfg("train.epochs=4", "train.scheduler=step", "train.step_size=2", "train.gamma=0.1",
               "train.warmup_epochs=1", "train.lr=1.0")
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = build_scheduler(cfg, opt, 2)
    lrs = []
    for _ in range(8):
        lrs.append(round(opt.param_groups[0]["lr"], 6))
        opt.step()
        sched.step()
    assert lrs == [0.5, 1.0, 1.0, 1.0, 0.1, 0.1, 0.1, 0.1]


# ------------------------------------------------------------------------------------ optimiser
class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4))
        self.head = nn.Linear(4, 2)
        self.frozen = nn.Linear(2, 2)
        self.frozen.requires_grad_(False)


def test_parameter_groups_no_decay_on_norms_and_biases_and_lr_multipliers():
    cfg = _cfg("train.lr=0.01", "train.weight_decay=0.05", "train.weight_decay_norm_bias=false",
               "train.lr_mult={trunk: 0.1}", "train.optimizer=adamw")
    groups = {(g["lr_mult"], g["weight_decay"]): sorted(g["names"]) for g in parameter_groups(cfg, _Net())}
    assert groups == {
        (0.1, 0.05): ["trunk.0.weight"],
        (0.1, 0.0): ["trunk.0.bias", "trunk.1.bias", "trunk.1.weight"],
        (1.0, 0.05): ["head.weight"],
        (1.0, 0.0): ["head.bias"],
    }
    opt = build_optimizer(cfg, _Net())
    assert sorted((g["lr"], g["weight_decay"]) for g in opt.param_groups) == [(0.001, 0.0), (0.001, 0.05), (0.01, 0.0), (0.01, 0.05)]
    assert sum(len(g["params"]) for g in opt.param_groups) == 6  # the frozen layer is left out


def test_default_groups_decay_everything_as_the_originals():
    cfg = _cfg("train.weight_decay=0.01")
    groups = parameter_groups(cfg, _Net())
    assert len(groups) == 1 and groups[0]["weight_decay"] == 0.01 and len(groups[0]["params"]) == 6


def test_lr_mult_naming_no_parameter_is_an_error():
    with pytest.raises(ConfigError, match="no trainable parameter is under backbone"):
        parameter_groups(_cfg("train.lr_mult={backbone: 0.1}"), _Net())


@pytest.mark.parametrize("override,match", [("train.grad_accum=0", "grad_accum"), ("train.clip_grad_norm=-1", "clip_grad_norm"),
                                            ("train.select_mode=up", "select_mode"), ("train.lr_mult={trunk: -1}", "lr_mult"),
                                            ("train.select_tie_break=loss", "select_tie_break"),
                                            ("train.nesterov=true", "nesterov needs optimizer sgd")])
def test_bad_train_options_are_config_errors(override, match):
    with pytest.raises(ConfigError, match=match):
        _cfg(override)


# ------------------------------------------------------------------------------------ tasks
def test_task_that_does_not_fit_the_model_is_a_clear_error():
    @register_task
    class _Localize(Task):
        name = "_test_localize"

    try:
        cfg = _cfg("task=_test_localize")
        with pytest.raises(ConfigError, match="does not fit model 'vaanet'.*classify"):
            build_task(cfg, ["a", "b"])
    finally:
        TASKS.pop("_test_localize")
    with pytest.raises(ConfigError, match="task 'nope' unknown"):
        build_task(_cfg("task=nope"), ["a", "b"])


def test_nesterov_reaches_the_sgd_optimiser():
    net = nn.Linear(3, 2)
    assert build_optimizer(_cfg("train.optimizer=sgd", "train.nesterov=true"), net).param_groups[0]["nesterov"] is True
    assert build_optimizer(_cfg("train.optimizer=sgd"), net).param_groups[0]["nesterov"] is False


@pytest.mark.parametrize("rule,expected", [("first", [0]), ("last", [0, 2, 3]), ("nll", [0, 2])])
def test_a_tie_on_the_select_metric_is_broken_by_the_configured_rule(rule, expected):
    t = build_task(_cfg("train.loss=ce", f"train.select_tie_break={rule}"), ["a", "b"])
    # epochs: accuracy 0.9 three times (val NLL 0.5, 0.3, 0.4), then a worse accuracy with the lowest NLL
    epochs = [{"accuracy": 0.9, "nll": 0.5}, {"accuracy": 0.8, "nll": 0.1}, {"accuracy": 0.9, "nll": 0.3},
              {"accuracy": 0.9, "nll": 0.4}]
    best, tie, kept = None, None, []
    for i, m in enumerate(epochs):
        improved, value = t.tie_better(m, best, tie)
        if improved:
            best, tie = m["accuracy"], value
            kept.append(i)
    assert kept == expected


def test_nll_tie_break_needs_a_task_that_reports_nll():
    t = build_task(_cfg("train.loss=ce", "train.select_tie_break=nll"), ["a", "b"])
    with pytest.raises(ConfigError, match="no nll metric"):
        t.tie_better({"accuracy": 0.5}, None, None)


def test_classification_metrics_carry_the_validation_nll():
    t = build_task(_cfg("train.loss=ce"), ["a", "b"])
    rows = [{"label": 0, "probs": [0.8, 0.2]}, {"label": 1, "probs": [0.6, 0.4]}]
    assert t.compute_metrics(rows)["nll"] == pytest.approx(-(math.log(0.8) + math.log(0.4)) / 2)


def test_select_metric_and_mode_come_from_the_task_unless_configured():
    t = build_task(_cfg("train.loss=ce"), ["a", "b"])
    assert (t.select_metric, t.select_mode) == ("accuracy", "max")
    assert t.better(0.5, 0.4) and not t.better(0.4, 0.5) and t.better(0.1, None)
    t = build_task(_cfg("train.loss=ce", "train.select_metric=loss", "train.select_mode=min"), ["a", "b"])
    assert (t.select_metric, t.select_mode) == ("loss", "min") and t.better(0.4, 0.5)


def test_model_args_derive_from_the_input_section_and_disagreement_is_an_error():
    t = build_task(_cfg("train.loss=ce", "input.seq_len=5"), ["a", "b", "c"])
    args = t.model_args()
    assert args["seq_len"] == 5 and args["num_classes"] == 3 and args["audio_bins"] == 32
    with pytest.raises(ConfigError, match="model.args.seq_len=7 disagrees with input.seq_len"):
        build_task(_cfg("train.loss=ce", "input.seq_len=5", "model.args.seq_len=7"), ["a", "b"]).model_args()


class _TwoInputs(nn.Module):
    input_keys = ("video", "audio")
    input_aliases = {"video": "video_features"}

    def forward(self, video=None, audio=None, *, video_features=None):
        return ClassifierOutput(logits=torch.zeros(1, 2))


def test_model_inputs_by_input_keys_and_aliases():
    m = _TwoInputs()
    assert set(model_inputs(m, {"video": 1, "audio": 2, "label": 3})) == {"video", "audio"}
    assert set(model_inputs(m, {"video_features": 1, "audio": 2})) == {"video_features", "audio"}
    with pytest.raises(KeyError, match="audio"):
        model_inputs(m, {"video": 1})


def test_a_task_step_may_run_several_forward_passes():
    """The interface CTEN needs: a step runs the model on several views of one batch."""

    class ThreeViews(ClassificationTask):
        def train_step(self, model, batch):
            outs = [model(x=batch["x"] * s) for s in (1.0, 0.5, 0.0)]
            loss = sum(self.loss_fn(o.logits, batch["label"]) for o in outs) / 3
            return StepOutput(loss, len(batch["label"]), {"loss": float(loss.detach())})

    class Lin(nn.Module):
        input_keys = ("x",)

        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3, 2)

        def forward(self, x):
            return ClassifierOutput(logits=self.fc(x))

    task = ThreeViews(_cfg("train.loss=ce"), ["a", "b"])
    model, calls = Lin(), []
    model.register_forward_hook(lambda *a: calls.append(1))
    out = task.train_step(model, {"x": torch.randn(4, 3), "label": torch.tensor([0, 1, 0, 1])})
    out.loss.backward()
    assert len(calls) == 3 and out.batch_size == 4 and model.fc.weight.grad is not None


def _text_prediction(lexicon: str):
    cfg = load_config("mbt/mbt_synth_text.yaml", [f"input.text.lexicon={lexicon}"])
    classes = ["Anger", "Joy", "Sadness", "Surprise"]
    task = build_task(cfg, classes, None)
    sample = {"snippet_times": torch.tensor([[0.5, 1.0], [2.5, 3.0]]), "segment_times": torch.tensor([[0.0, 2.0], [2.0, 4.0]]),
              "text": ["I am so furious, really angry!", "the bus leaves at nine"], "text_source": "asr"}
    out = ClassifierOutput(logits=torch.tensor([[2.0, 0.0, 0.0, 0.0]]),
                           extras={"snippet_logits": torch.tensor([[[2.0, 0.0, 0.0, 0.0], [0.0, 0.0, 3.0, 0.0]]])})
    return task.format_prediction(sample, out)


def test_prediction_shows_each_windows_text_and_its_emotional_words():
    res = _text_prediction("synthetic")
    assert res["lexicon"] == "synthetic" and res["text_source"] == "asr"
    first, second = res["timeline"]
    assert first["text"] == "I am so furious, really angry!" and first["text_span"] == [0.0, 2.0]
    assert [(w["word"], w["emotion"], w["sentiment"], w["degree"]) for w in first["emotional_words"]] == [
        ("furious", "Anger", "negative", 1.0), ("angry", "Anger", "negative", 1.0)]
    assert second["emotional_words"] == [] and second["label"] == "Sadness"
    plain = _text_prediction("none")
    assert plain["lexicon"] is None and "emotional_words" not in plain["timeline"][0]
    assert plain["timeline"][1]["text"] == "the bus leaves at nine"


def test_unknown_lexicon_is_a_config_error():
    with pytest.raises(ConfigError, match="input.text.lexicon"):
        load_config("mbt/mbt_synth_text.yaml", ["input.text.lexicon=wordnet"])
    with pytest.raises(ConfigError, match="input.text.align"):
        load_config("mbt/mbt_synth_text.yaml", ["input.text.align=sentence"])
    with pytest.raises(ConfigError, match="input.text.asr"):
        load_config("mbt/mbt_synth_text.yaml", ["input.text.asr=sphinx"])
    cfg = load_config("mbt/mbt_synth_text.yaml", ["input.text.align=word", "input.text.asr=whisper"])
    assert cfg.input.text.align == "word" and cfg.input.text.asr == "whisper"
