"""Original CTEN training checkpoints (nku-zhichengzhang/CTEN ``save_<epoch>_<acc>.pth``) -> the kit's
CTEN / CTEN visual-only, by key name: round trip through a file in the original layout, strictness."""
from __future__ import annotations

import re

import pytest
import torch

from affectkit.errors import CheckpointError
from affectkit.models.cten import (
    CTEN,
    CTENVisual,
    convert_original_cten_state_dict,
    load_original_cten_checkpoint,
)
from affectkit.registry import create_model

TINY = dict(depth=10, width=4, seq_len=4, snippet_duration=4, sample_size=32, nonlocal_dim=8, num_classes=5)
TINY_AV = dict(TINY, audio_width=4, audio_frames=64, audio_bins=8, heads=2)

# The inverse map, names only, written from the original's module layout (not from the converter):
# nn.Sequential children of the ResNets (0 conv1, 1 bn1, 4..7 layer1..layer4), the modules' own names.
_TO_ORIGINAL = [
    (r"^trunk\.conv1\.", "resnet.0."), (r"^trunk\.bn1\.", "resnet.1."),
    (r"^trunk\.layer1\.", "resnet.4."), (r"^trunk\.layer2\.", "resnet.5."),
    (r"^trunk\.layer3\.", "resnet.6."), (r"^trunk\.layer4\.", "resnet.7."),
    (r"^audio_net\.conv1\.", "a_resnet.0."), (r"^audio_net\.bn1\.", "a_resnet.1."),
    (r"^audio_net\.layer1\.", "a_resnet.4."), (r"^audio_net\.layer2\.", "a_resnet.5."),
    (r"^audio_net\.layer3\.", "a_resnet.6."), (r"^audio_net\.layer4\.", "a_resnet.7."),
    (r"^audio_proj\.", "a_fc."),
    (r"^visual_nonlocal\.norm\.", "nl.0.bn."), (r"^visual_nonlocal\.", "nl.0."),
    (r"^audio_nonlocal\.norm\.", "nl_a.0.bn."), (r"^audio_nonlocal\.", "nl_a.0."),
    (r"^visual_cross\.query\.", "v2a_attn.linear_q."), (r"^visual_cross\.key\.", "v2a_attn.linear_k."),
    (r"^visual_cross\.value\.", "v2a_attn.linear_v."), (r"^visual_cross\.out\.", "v2a_attn.linear_o."),
    (r"^audio_cross\.query\.", "a2v_attn.linear_q."), (r"^audio_cross\.key\.", "a2v_attn.linear_k."),
    (r"^audio_cross\.value\.", "a2v_attn.linear_v."), (r"^audio_cross\.out\.", "a2v_attn.linear_o."),
    (r"^temporal_attention\.proj\.", "ta_net.conv.0."), (r"^temporal_attention\.norm\.", "ta_net.conv.1."),
    (r"^temporal_attention\.fc\.", "ta_net.fc."),
    (r"^classifier\.", "fc."),
]


def to_original(key: str) -> str:
    for pattern, repl in _TO_ORIGINAL:
        if re.match(pattern, key):
            return re.sub(pattern, repl, key, count=1)
    raise AssertionError(f"no original name for {key}")


def _randomised(cls, cfg, seed):
    """A model whose every tensor (BatchNorm statistics, alpha included) differs from a fresh one."""
    torch.manual_seed(seed)
    model = cls(**cfg)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if name.endswith("num_batches_tracked"):
                t.fill_(7)
            elif name.endswith("running_var"):
                t.uniform_(0.5, 2.0)
            elif t.is_floating_point():
                t.copy_(torch.randn_like(t) * (0.3 if t.dim() > 1 else 0.5))
        model.temporal_attention.fc.bias.add_(1.0)  # a ReLU attention that is not all zero
    return model.eval()


def _write_original(model, path, *, prefix="module.", wrapper=True, edit=None):
    state = {prefix + to_original(k): v.clone() for k, v in model.state_dict().items()}
    if edit:
        edit(state)
    if wrapper:
        params = [p.detach().clone().requires_grad_(True) for p in model.parameters() if p.requires_grad]
        opt = torch.optim.Adam(params, lr=2e-4, weight_decay=5e-4)  # on copies: the model stays as saved
        params[0].grad = torch.zeros_like(params[0])
        opt.step()  # an optimizer state with tensors, tuples and None, as the original saves
        state = {"epoch": 12, "state_dict": state, "optimizer": opt.state_dict()}
    torch.save(state, path)


@pytest.mark.parametrize("cls,cfg,prefix,wrapper", [
    (CTENVisual, TINY, "module.", True),   # the official main.py: VisualErase in DataParallel
    (CTEN, TINY_AV, "", True),             # VAANetErase as vaanet_erase.py builds it (no wrapper)
    (CTEN, TINY_AV, "module.", False),     # a bare state dict
])
def test_round_trip_gives_identical_outputs(tmp_path, cls, cfg, prefix, wrapper):
    ref = _randomised(cls, cfg, seed=1)
    path = tmp_path / "save_12_0.5000.pth"
    _write_original(ref, path, prefix=prefix, wrapper=wrapper)
    fresh = cls(**cfg).eval()
    x = ref.example_inputs(batch_size=2)
    with torch.no_grad():
        assert not torch.allclose(fresh(**x).logits, ref(**x).logits)
        report = load_original_cten_checkpoint(fresh, path)
        assert sorted(report.loaded) == sorted(ref.state_dict())
        out, want = fresh(**x), ref(**x)
    assert torch.equal(out.logits, want.logits) and torch.equal(out.temporal_attention, want.temporal_attention)
    for k, v in ref.state_dict().items():
        assert torch.equal(fresh.state_dict()[k], v), k
    # the same through the model arg (registry: a pretrained arg, cleared when a kit checkpoint is read)
    name = "cten" if cls is CTEN else "cten_visual"
    built = create_model(name, **cfg, pretrained_cten=str(path)).eval()
    with torch.no_grad():
        assert torch.equal(built(**x).logits, want.logits)
    assert built.pretrained_cten_report.source == str(path)
    assert not any(p.requires_grad for p in built.trunk.parameters())  # still frozen


def test_original_key_names_at_full_size():
    """The original layout of cten_keys.md: every full-size kit key has an original name, and the
    converter maps those names back (meta tensors: shapes only)."""
    with torch.device("meta"):
        av, vis = create_model("cten"), create_model("cten_visual")
    names = {to_original(k) for k in av.state_dict()}
    for k in ("resnet.0.weight", "resnet.1.running_mean", "resnet.4.0.downsample.0.weight",
              "resnet.6.22.conv3.weight", "resnet.7.2.bn3.bias", "nl.0.theta.weight", "nl.0.alpha",
              "nl.0.bn.num_batches_tracked", "nl_a.0.g.bias", "a_resnet.0.weight", "a_resnet.5.0.downsample.1.running_var",
              "a_fc.0.weight", "a_fc.1.running_var", "v2a_attn.linear_q.weight", "a2v_attn.linear_o.bias",
              "ta_net.conv.0.weight", "ta_net.conv.1.weight", "ta_net.fc.bias", "fc.weight"):
        assert k in names, k
    assert av.state_dict()["temporal_attention.proj.weight"].shape == (1, 4096, 1)  # Conv1d 2048+2048 -> 1
    for model, visual_only in ((av, False), (vis, True)):
        sd = model.state_dict()
        original = {"module." + to_original(k): v for k, v in sd.items()}
        back = convert_original_cten_state_dict({"epoch": 1, "state_dict": original}, visual_only=visual_only)
        assert set(back) == set(sd) and all(back[k].shape == sd[k].shape for k in sd)


def test_extra_key_fails_naming_it(tmp_path):
    path = tmp_path / "extra.pth"
    _write_original(_randomised(CTENVisual, TINY, 1), path,
                    edit=lambda s: s.update({"module.resnet.9.weight": torch.zeros(5, 32), "module.nl.0.gamma": torch.zeros(1)}))
    with pytest.raises(CheckpointError, match=r"extra\.pth: .*2 key\(s\) cannot be mapped: resnet\.9\.weight, nl\.0\.gamma"):
        load_original_cten_checkpoint(CTENVisual(**TINY), path)
    with pytest.raises(CheckpointError, match="resnet.9.weight"):  # the model arg fails the same way
        create_model("cten_visual", **TINY, pretrained_cten=str(path))


def test_missing_key_fails_naming_it_and_loads_nothing(tmp_path):
    path = tmp_path / "missing.pth"
    _write_original(_randomised(CTEN, TINY_AV, 1), path,
                    edit=lambda s: [s.pop("module.nl.0.alpha"), s.pop("module.a2v_attn.linear_k.bias")])
    model = CTEN(**TINY_AV)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointError, match=r"2 model key\(s\) the file lacks: visual_nonlocal\.alpha, audio_cross\.key\.bias"):
        load_original_cten_checkpoint(model, path)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    # num_batches_tracked may be absent (checkpoints older than the counter)
    path2 = tmp_path / "no_counters.pth"
    _write_original(_randomised(CTEN, TINY_AV, 1), path2,
                    edit=lambda s: [s.pop(k) for k in list(s) if k.endswith("num_batches_tracked")])
    load_original_cten_checkpoint(CTEN(**TINY_AV), path2)


def test_shape_mismatch_and_wrong_network_fail_loudly(tmp_path):
    path = tmp_path / "av.pth"
    _write_original(_randomised(CTEN, TINY_AV, 1), path)
    with pytest.raises(CheckpointError, match=r"shape mismatch.*fc\.weight -> classifier\.weight: file \(5, 64\) vs model \(8, 64\)"):
        load_original_cten_checkpoint(CTEN(**{**TINY_AV, "num_classes": 8}), path)
    with pytest.raises(CheckpointError, match="audio keys.*VAANetErase.*a_resnet"):
        load_original_cten_checkpoint(CTENVisual(**TINY), path)  # the audio-visual file into the visual network
    vis = tmp_path / "vis.pth"
    _write_original(_randomised(CTENVisual, TINY, 1), vis)
    with pytest.raises(CheckpointError, match="model key.*the file lacks: audio_net.conv1.weight"):
        load_original_cten_checkpoint(CTEN(**TINY_AV), vis)
    with pytest.raises(CheckpointError, match="nl.0.alpha"):  # the paper's residual has no alpha
        load_original_cten_checkpoint(CTENVisual(**TINY, nonlocal_residual="paper"), vis)
    with pytest.raises(CheckpointError, match="no such checkpoint file"):
        load_original_cten_checkpoint(CTENVisual(**TINY), tmp_path / "absent.pth")
