"""BPM-GCN and the 2s-AGCN baseline: the graph, the adaptive GCN block, the streams and the fusion,
the full-size parameter count and FLOPs against the spec (D.2, D.4-D.6)."""
import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from affectkit.data.gait import movement_features
from affectkit.models.blocks.gcn import AdaptiveGraphConv, PMFusion, spatial_graph
from affectkit.models.bpm_gcn import AGCN, BPMGCN, EGAIT_EDGES, FULL_SIZE, egait_graph
from affectkit.registry import create_model


def test_graph_is_the_16_joint_tree_with_three_normalised_subsets():
    assert len(EGAIT_EDGES) == 15 and len({frozenset(e) for e in EGAIT_EDGES}) == 15
    A = egait_graph()
    assert A.shape == (3, 16, 16)
    assert np.array_equal(A[0], np.eye(16))
    # every column of the inward/outward adjacency sums to 1 or 0 (A D^-1)
    for k in (1, 2):
        sums = A[k].sum(0)
        assert np.allclose(sums[sums > 0], 1.0)
    # the inward (child -> parent) pattern is the transposed outward one, and connects all 16 joints
    assert np.array_equal(A[1] > 0, (A[2] > 0).T)
    adj = (A[1] + A[2]) > 0
    seen, todo = {0}, [0]
    while todo:
        i = todo.pop()
        for j in np.nonzero(adj[i])[0]:
            if j not in seen:
                seen.add(int(j))
                todo.append(int(j))
    assert seen == set(range(16))
    assert A[1][1, 2] == 1.0  # neck (2) -> spine (1): parent row, child column
    with pytest.raises(ValueError, match="edge"):
        spatial_graph(4, [(0, 4)])


def test_adaptive_gcn_block_follows_2s_agcn():
    torch.manual_seed(0)
    g = AdaptiveGraphConv(8, 16, egait_graph())
    assert g.inter == 4 and g.PA.shape == (3, 16, 16) and torch.allclose(g.PA, torch.full_like(g.PA, 1e-6))
    assert torch.allclose(g.bn.weight, torch.full_like(g.bn.weight, 1e-6))
    x = torch.randn(2, 8, 12, 16)
    g.eval()
    y = g(x)
    assert y.shape == (2, 16, 12, 16) and (y >= 0).all()
    # with the output BN near zero at init, the block is ReLU(down(x)): the residual path dominates
    assert torch.allclose(y, torch.relu(g.down(x)), atol=1e-4)
    assert "A" not in g.state_dict() and "PA" in g.state_dict()  # A is fixed, rebuilt from the graph


def test_full_size_parameters_shapes_and_flops_match_the_spec():
    m = create_model("bpm_gcn").eval()
    mf = create_model("bpm_gcn", pm_fusion=True).eval()
    n, nf = (sum(p.numel() for p in x.parameters()) for x in (m, mf))
    assert (n, nf) == (FULL_SIZE["bpm_gcn"], FULL_SIZE["bpm_gcn_fusion"])
    assert abs(n / 7.26e6 - 1) < 0.005 and abs(nf / 7.27e6 - 1) < 0.005  # the paper: 7.26M / 7.27M
    assert sum(p.numel() for p in create_model("agcn").parameters()) == FULL_SIZE["agcn"]
    # the streams: 48 -> 24 -> 12 frames, 64 -> 128 -> 256 channels
    x = mf.example_inputs(2)["skeleton"]
    shapes = []
    hooks = [b.register_forward_hook(lambda mod, i, o: shapes.append(tuple(o.shape))) for b in mf.posture.blocks]
    with torch.no_grad():
        out = mf(skeleton=x)
    for h in hooks:
        h.remove()
    assert shapes[0] == (2, 64, 48, 16) and shapes[4] == (2, 128, 24, 16) and shapes[9] == (2, 256, 12, 16)
    assert out.logits.shape == (2, 4) and out.extras["affective"].shape == (2, 1488)  # 31 features x 48 frames
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        m(**m.example_inputs(1))
    gmac = fc.get_total_flops() / 2e9  # FlopCounterMode counts a multiply-add as 2 FLOPs
    assert abs(gmac / 1.91 - 1) < 0.05, gmac  # the paper's 1.91 "GFLOPs" are multiply-adds


def test_logits_are_the_stream_average_and_movement_is_derived_inside():
    torch.manual_seed(0)
    m = BPMGCN(num_classes=3, base_width=4, pm_fusion=True).eval()
    x = m.example_inputs(2)["skeleton"]
    x[:, :, 40:] = 0  # padded frames
    seen = {}
    m.movement.data_bn.register_forward_hook(lambda mod, i, o: seen.setdefault("in", i[0]))
    with torch.no_grad():
        out = m(skeleton=x)
    assert torch.allclose(out.logits, (out.extras["logits_posture"] + out.extras["logits_movement"]) / 2)
    want = movement_features(x).permute(0, 3, 1, 2).reshape(2, 16 * 8, 48)  # (N, V*C, T) into the input BN
    assert torch.allclose(seen["in"], want)
    # the per-frame attention: the mean of the first (48-frame) fusion's two temporal gates
    first, gates = m.fusion[0], {}
    original = first.forward_with_attention
    first.forward_with_attention = lambda xp, xm: gates.setdefault("out", original(xp, xm))
    with torch.no_grad():
        m(skeleton=x)
    del first.forward_with_attention
    tp, tm = gates["out"][2]
    assert out.temporal_attention.shape == (2, 48)
    assert torch.allclose(out.temporal_attention, (tp + tm) / 2)
    assert ((out.temporal_attention > 0) & (out.temporal_attention < 1)).all()
    plain = BPMGCN(num_classes=3, base_width=4, pm_fusion=False).eval()
    assert plain(skeleton=x).temporal_attention is None  # without fusion the model computes none
    with pytest.raises(ValueError, match="built for 48"):
        m(skeleton=x[:, :, :40])


def test_fusion_code_variant_is_sequential_and_paper_variant_parallel():
    torch.manual_seed(0)
    xp, xm = torch.randn(2, 4, 12, 16), torch.randn(2, 4, 12, 16)
    code, paper = PMFusion(12, 16, "code"), PMFusion(12, 16, "paper")
    paper.load_state_dict(code.state_dict())
    p1, m1 = code(xp, xm)
    # code: x_p + x_m * tatt_m (node attention only shapes tatt), then x_m + x_p_new * tatt(x_p_new)
    tatt_m = code._tatt(xm * code._natt(xm, 1), 1)
    assert torch.allclose(p1, xp + xm * tatt_m)
    assert torch.allclose(m1, xm + p1 * code._tatt(p1 * code._natt(p1, 0), 0))
    _, _, (tp, tm) = code.forward_with_attention(xp, xm)  # the per-frame gates, (N, T)
    assert torch.allclose(tm, tatt_m[:, 0, :, 0]) and torch.allclose(tp, code._tatt(p1 * code._natt(p1, 0), 0)[:, 0, :, 0])
    p2, m2 = paper(xp, xm)
    assert torch.allclose(p2, xp + xm * paper._tatt(xm, 1) * paper._natt(xm, 1))
    assert torch.allclose(m2, xm + xp * paper._tatt(xp, 0) * paper._natt(xp, 0))
    assert not torch.allclose(m1, m2)
    with pytest.raises(ValueError, match="fusion mode"):
        PMFusion(12, 16, "concat")


def test_models_train_a_step_and_agcn_is_single_stream():
    torch.manual_seed(0)
    for model in (BPMGCN(num_classes=4, base_width=4, pool="max"), AGCN(num_classes=4, base_width=4)):
        x = model.example_inputs(4)["skeleton"]
        out = model(skeleton=x)
        loss = torch.nn.functional.cross_entropy(out.logits, torch.tensor([0, 1, 2, 3]))
        loss.backward()
        assert all(p.grad is not None for n, p in model.named_parameters() if "fc_aff" not in n and "PA" not in n)
    assert AGCN(base_width=4)(**AGCN(base_width=4).example_inputs(1)).extras == {}
