"""Polarity-consistent cross-entropy (VAANet) and the loss factory."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from affectkit.errors import ConfigError
from affectkit.losses import VE8_POLARITY, PolarityConsistentCE, build_loss


def ce_by_hand(row: list[float], label: int) -> float:
    return -row[label] + math.log(sum(math.exp(v) for v in row))


def test_pcce_matches_hand_computation():
    # 4 classes: 0, 1 negative; 2, 3 positive
    polarity = [0, 0, 1, 1]
    logits = [[2.0, 0.5, 3.0, -1.0],   # label 0 (neg), argmax 2 (pos): polarity flip -> weight 1.5
              [0.1, 1.0, 0.3, 0.2],    # label 0 (neg), argmax 1 (neg): wrong class, same polarity -> 1
              [-0.5, 0.0, 0.4, 1.2]]   # label 3 (pos), argmax 3: correct -> 1
    labels = [0, 0, 3]
    ce = [ce_by_hand(r, y) for r, y in zip(logits, labels)]
    expected = (1.5 * ce[0] + ce[1] + ce[2]) / 3
    loss = PolarityConsistentCE(polarity, lambda_=0.5)(torch.tensor(logits), torch.tensor(labels))
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    # not the JACK port's mean(w) * mean(CE)
    jack = (1.5 + 1 + 1) / 3 * sum(ce) / 3
    assert abs(loss.item() - jack) > 1e-3


def test_pcce_gradient_is_weighted_ce_gradient():
    logits = torch.tensor([[2.0, 0.5, 3.0, -1.0], [0.1, 1.0, 0.3, 0.2]], requires_grad=True)
    labels = torch.tensor([0, 0])
    PolarityConsistentCE([0, 0, 1, 1], lambda_=1.0)(logits, labels).backward()
    ref = logits.detach().clone().requires_grad_(True)
    ((F.cross_entropy(ref, labels, reduction="none") * torch.tensor([2.0, 1.0])).mean()).backward()
    assert torch.allclose(logits.grad, ref.grad)


def test_pcce_degenerates_to_ce():
    g = torch.Generator().manual_seed(0)
    logits, labels = torch.randn(6, 8, generator=g), torch.randint(0, 8, (6,), generator=g)
    ce = F.cross_entropy(logits, labels)
    assert torch.allclose(PolarityConsistentCE(None)(logits, labels), ce)
    assert torch.allclose(PolarityConsistentCE(VE8_POLARITY, lambda_=0.0)(logits, labels), ce)
    assert torch.allclose(build_loss("ce")(logits, labels), ce)
    # with the VE-8 map, every sample predicted in its own polarity costs plain CE
    assert PolarityConsistentCE(VE8_POLARITY)(logits, labels) >= ce - 1e-6


def test_ve8_polarity_and_factory():
    # Anger, Anticipation, Disgust, Fear, Joy, Sadness, Surprise, Trust
    assert [i for i, p in enumerate(VE8_POLARITY) if p == 1] == [1, 4, 6, 7]
    loss = build_loss("pcce", polarity=VE8_POLARITY, lambda_=0.5)
    assert isinstance(loss, PolarityConsistentCE) and loss.lambda_ == 0.5
    with pytest.raises(ConfigError):
        build_loss("pcce")
    with pytest.raises(ConfigError):
        build_loss("focal")
    with pytest.raises(ConfigError):
        PolarityConsistentCE([0, 1], lambda_=-1)
    with pytest.raises(ValueError, match="classes"):
        PolarityConsistentCE([0, 1, 1])(torch.zeros(2, 8), torch.tensor([0, 1]))
