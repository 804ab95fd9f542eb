"""Task ``mart_pretrain``: MART's pretraining phase (:mod:`affectkit.models.mart`) in the shared trainer.

Each step finds the emotional words of every window's subtitles with the configured lexicon
(``input.text.lexicon``; the classes' polarity from ``data.polarity`` for verification), and calls the MART model's
pretraining forward with the training progress (epoch / epochs, set by the trainer at each epoch). Evaluation is the
classification task's (the backbone's logits), so the pretraining run keeps the model best on the validation split.
Phase 2 (fine-tuning) is ``task: classify`` on the same ``model: mart`` with ``train.init_from`` the pretraining run:
without words MART's forward is its backbone's (the shipped ``mart/*_finetune.yaml``).
"""
from __future__ import annotations

import torch

from ..errors import ConfigError
from .tasks import ClassificationTask, StepOutput, model_inputs, register_task


def _texts(batch: dict, n: int) -> list[list[str]]:
    from ..models.blocks.text_encoder import normalize_text_batch

    texts = batch.get("text")
    if texts is None:
        raise ConfigError("task mart_pretrain needs the `text` modality (per-window subtitles or transcripts)")
    return normalize_text_batch(list(texts)[:n])  # a sample without text: one empty window


@register_task
class MartPretrainTask(ClassificationTask):
    """MART pretraining (see the module docstring)."""

    name = "mart_pretrain"
    progress = 0.0

    def __init__(self, cfg, classes, polarity=None):
        super().__init__(cfg, classes, polarity)
        from ..data.lexicon import resolve_lexicon

        name = getattr(cfg.input.text, "lexicon", "auto")
        self.lexicon = resolve_lexicon(name, self.classes)
        if self.lexicon is None:
            raise ConfigError(f"task mart_pretrain needs an emotion lexicon; input.text.lexicon={name!r} gives none "
                              f"(install sentic or nrclex, or use lexicon: synthetic on the synthetic set)")
        self.class_sign = torch.tensor([{"positive": 1, "negative": -1}.get((polarity or {}).get(c, ""), 0)
                                        for c in self.classes], dtype=torch.long) if polarity else None

    def start_epoch(self, epoch: int, epochs: int) -> None:
        self.progress = (epoch + 1) / max(1, epochs)  # MART's alpha: the epoch (1-based) over the epochs

    def train_step(self, model, batch):
        from ..models.mart import WindowWords

        inner = getattr(model, "module", model)
        if not hasattr(inner, "pretrain"):
            raise ConfigError(f"task mart_pretrain needs model: mart, got {type(inner).__name__}")
        inputs = model_inputs(model, batch)
        y = batch["label"]
        words = WindowWords.from_texts(_texts(batch, len(y)), self.lexicon, self.classes, int(inner.cfg["max_words"]))
        gen = torch.Generator().manual_seed(int(torch.randint(0, 2**31 - 1, (1,)).item()))  # follows the seed
        res = model(**inputs, words=words, label=y, loss_fn=self.loss_fn, progress=self.progress,
                    class_sign=self.class_sign, generator=gen)
        correct = (res.out.logits.detach().argmax(-1) == y).float().mean()
        logs = {"loss": float(res.loss.detach()), "accuracy": float(correct)}
        logs.update({f"loss_{k}" if k in ("cls", "tacl", "pix", "kl", "aux") else k: v for k, v in res.losses.items()})
        return StepOutput(res.loss, len(y), logs)
