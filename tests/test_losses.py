"""Tests of affectlab.losses: hand-computed values, reference implementations and gradients."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from affectlab import losses as L

torch.set_num_threads(1)
D64 = torch.float64


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------------------------------------
# classification
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("smoothing", [0.0, 0.055, 0.3])
@pytest.mark.parametrize("weighted", [False, True])
def test_label_smoothed_ce_matches_torch(smoothing, weighted):
    g = _gen(0)
    logits = torch.randn(7, 5, generator=g, dtype=D64)
    target = torch.randint(0, 5, (7,), generator=g)
    w = torch.rand(5, generator=g, dtype=D64) + 0.5 if weighted else None
    ours = L.label_smoothed_ce(logits, target, smoothing, w)
    ref = F.cross_entropy(logits, target, weight=w, label_smoothing=smoothing)
    assert float(ours) == pytest.approx(ref.item(), abs=1e-12)


def test_label_smoothed_ce_hand_value_and_gradient():
    logits = torch.tensor([[0.0, 0.0]], dtype=D64, requires_grad=True)
    target = torch.tensor([0])
    loss = L.label_smoothed_ce(logits, target, smoothing=0.2)
    assert loss.item() == pytest.approx(math.log(2))  # uniform prediction: log K whatever the target
    loss.backward()
    # d/dz = softmax - smoothed target = [0.5 - 0.9, 0.5 - 0.1]
    torch.testing.assert_close(logits.grad, torch.tensor([[-0.4, 0.4]], dtype=D64))
    x = torch.randn(4, 3, dtype=D64, requires_grad=True, generator=_gen(1))
    w = torch.tensor([1.0, 2.0, 0.5], dtype=D64)
    y = torch.tensor([0, 1, 2, 1])
    assert torch.autograd.gradcheck(lambda z: L.label_smoothed_ce(z, y, 0.1, w), (x,))


def test_label_smoothed_ce_rejects_bad_targets():
    with pytest.raises(ValueError, match="target"):
        L.label_smoothed_ce(torch.zeros(2, 3), torch.tensor([0, 3]), 0.1)
    with pytest.raises(ValueError, match="smoothing"):
        L.label_smoothed_ce(torch.zeros(2, 3), torch.tensor([0, 1]), 1.0)


def test_soft_target_ce_hand_value_gradient_and_reference():
    logits = torch.tensor([[math.log(3.0), 0.0]], dtype=D64, requires_grad=True)  # p = [0.75, 0.25]
    soft = torch.tensor([[0.6, 0.4]], dtype=D64)
    loss = L.soft_target_ce(logits, soft)
    assert loss.item() == pytest.approx(-(0.6 * math.log(0.75) + 0.4 * math.log(0.25)))
    loss.backward()
    torch.testing.assert_close(logits.grad, torch.tensor([[0.15, -0.15]], dtype=D64))
    g = _gen(2)
    z = torch.randn(6, 8, dtype=D64, generator=g)
    votes = torch.randint(0, 10, (6, 8), generator=g).to(D64) + 1
    q = votes / votes.sum(dim=1, keepdim=True)
    assert float(L.soft_target_ce(z, q)) == pytest.approx(float(F.cross_entropy(z, q)), abs=1e-12)
    with pytest.raises(ValueError, match="sum to 1"):
        L.soft_target_ce(z, votes)


def test_kd_mse_hand_value_and_gradient():
    s = torch.tensor([[0.0, 0.0]], dtype=D64, requires_grad=True)
    t = torch.tensor([[5 * math.log(3.0), 0.0]], dtype=D64)  # softmax(t / 5) = [0.75, 0.25]
    loss = L.kd_logit_loss(s, t, T=5.0, kind="mse")
    assert loss.item() == pytest.approx((0.25**2 + 0.25**2) / 2)
    x = torch.randn(3, 4, dtype=D64, requires_grad=True, generator=_gen(3))
    tt = torch.randn(3, 4, dtype=D64, generator=_gen(4))
    assert torch.autograd.gradcheck(lambda z: L.kd_logit_loss(z, tt, T=5.0, kind="mse"), (x,))


def test_kd_kl_matches_hinton_definition_and_gradient():
    g = _gen(5)
    s = torch.randn(5, 8, dtype=D64, generator=g, requires_grad=True)
    t = torch.randn(5, 8, dtype=D64, generator=g)
    T = 4.0
    ref = F.kl_div(F.log_softmax(s / T, 1), F.softmax(t / T, 1), reduction="batchmean") * T * T
    loss = L.kd_logit_loss(s, t, T=T, kind="kl")
    assert loss.item() == pytest.approx(ref.item(), abs=1e-12)
    # hand-derived gradient: T^2 * (p_s - p_t) / T / B = T (p_s - p_t) / B
    loss.backward()
    expected = T * (F.softmax(s / T, 1) - F.softmax(t / T, 1)).detach() / 5
    torch.testing.assert_close(s.grad, expected)
    assert float(L.kd_logit_loss(t, t, T=T, kind="kl")) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="kind"):
        L.kd_logit_loss(s, t, kind="l1")


def test_prototype_targets_repeat_the_prior():
    prior = torch.tensor([0.5, 0.25, 0.25], dtype=D64)
    q = L.prototype_targets(prior, 4)
    assert q.shape == (4, 3)
    torch.testing.assert_close(q, prior.expand(4, 3))
    with pytest.raises(ValueError, match="sum to 1"):
        L.prototype_targets(prior * 2, 4)


def test_proto_kd_hand_value_and_gradient():
    # f along p_0; p_1 orthogonal: s = [1, 0]; tau = 0.5 -> q_stu = softmax([2, 0])
    f = torch.tensor([[2.0, 0.0]], dtype=D64)  # norm 2: normalised inside
    p = torch.tensor([[1.0, 0.0], [0.0, 3.0]], dtype=D64)
    q = torch.tensor([0.5, 0.5], dtype=D64)
    q_stu = torch.softmax(torch.tensor([2.0, 0.0], dtype=D64), 0)
    expected = float((q * (q.log() - q_stu.log())).sum())
    assert float(L.proto_kd_loss(f, p, q, tau=0.5)) == pytest.approx(expected, abs=1e-12)
    # a zero in q^pro contributes nothing
    q0 = torch.tensor([1.0, 0.0], dtype=D64)
    assert float(L.proto_kd_loss(f, p, q0, tau=0.5)) == pytest.approx(float(-q_stu[0].log()), abs=1e-12)
    g = _gen(6)
    x = torch.randn(4, 6, dtype=D64, generator=g, requires_grad=True)
    protos = torch.randn(5, 6, dtype=D64, generator=g)
    prior = torch.softmax(torch.randn(5, dtype=D64, generator=g), 0)
    assert torch.autograd.gradcheck(lambda z: L.proto_kd_loss(z, protos, prior, tau=0.9), (x,))
    per_sample = L.prototype_targets(prior, 4)
    x = x.detach()
    shared = L.proto_kd_loss(x, protos, prior).item()
    assert L.proto_kd_loss(x, protos, per_sample).item() == pytest.approx(shared)


def test_dgeo_hand_value():
    # class 0 (positive): points (0,0), (2,0): mean (1,0), variance (1 + 1) / 2 = 1
    # class 1: single point (1, 0.5): mean (1, 0.5); distance between means 0.5
    feats = torch.tensor([[0.0, 0.0], [2.0, 0.0], [1.0, 0.5]], dtype=D64)
    labels = torch.tensor([0, 0, 1])
    l_var, l_margin = L.dgeo_terms(feats, labels, positive_classes=[0, 1], sigma_max=0.5, margin=1.0)
    assert float(l_var) == pytest.approx(1.0 - 0.25)  # class 1 has one sample: no variance term
    assert float(l_margin) == pytest.approx(2 * (1.0 - 0.5))  # ordered pairs (0,1) and (1,0)
    total = L.dgeo_loss(feats, labels, [0, 1], 0.5, 1.0, alpha_var=2.0, alpha_mar=0.1)
    assert float(total) == pytest.approx(2.0 * 0.75 + 0.1 * 1.0)
    # within the caps nothing is penalised
    relaxed = L.dgeo_loss(feats, labels, [0], sigma_max=2.0, margin=0.1, alpha_var=1, alpha_mar=1)
    assert float(relaxed) == 0.0


def test_dgeo_gradient():
    g = _gen(7)
    x = torch.randn(8, 3, dtype=D64, generator=g, requires_grad=True)
    labels = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2])
    assert torch.autograd.gradcheck(
        lambda z: L.dgeo_loss(z, labels, [0, 2], 0.3, 5.0, alpha_var=1.0, alpha_mar=0.5), (x,)
    )


def test_dgeo_weight_schedule():
    # paper window 20 -> 60 for a 60-epoch run
    assert L.dgeo_weight(0, 60) == 0.0
    assert L.dgeo_weight(19.9, 60) == 0.0
    assert L.dgeo_weight(20, 60) == pytest.approx(0.0)
    assert L.dgeo_weight(40, 60) == pytest.approx(0.006)  # half-way: half the weight
    assert L.dgeo_weight(30, 60) == pytest.approx(0.012 * (1 - math.cos(math.pi / 4)) / 2)
    assert L.dgeo_weight(60, 60) == pytest.approx(0.012)
    assert L.dgeo_weight(80, 100, paper_epochs=100) == pytest.approx(0.012)  # held after the window
    assert L.dgeo_weight(80, 100, paper_epochs=100, hold_after_end=False) == 0.0
    # scaled to a 6-epoch run: window 2 -> 6
    assert L.dgeo_weight(1, 6) == 0.0
    assert L.dgeo_weight(4, 6) == pytest.approx(0.006)
    # monotone inside the window
    ws = [L.dgeo_weight(e, 60) for e in range(20, 61)]
    assert all(b >= a for a, b in zip(ws, ws[1:]))


def test_info_nce_hand_value_and_gradient():
    pred = torch.tensor([[1.0, 0.0], [0.0, 2.0]], dtype=D64)
    target = torch.tensor([[3.0, 0.0], [1.0, 1.0]], dtype=D64)
    # cos: row 0 -> [1, 1/sqrt2]; row 1 -> [0, 1/sqrt2]
    r = 1 / math.sqrt(2)
    row0 = -math.log(math.exp(1) / (math.exp(1) + math.exp(r)))
    row1 = -math.log(math.exp(r) / (math.exp(0) + math.exp(r)))
    assert float(L.info_nce_loss(pred, target, temperature=1.0)) == pytest.approx((row0 + row1) / 2)
    g = _gen(8)
    x = torch.randn(5, 4, dtype=D64, generator=g, requires_grad=True)
    y = torch.randn(5, 4, dtype=D64, generator=g)
    assert torch.autograd.gradcheck(lambda z: L.info_nce_loss(z, y, temperature=0.1), (x,))


def test_vertex_loss_hand_value_and_gradient():
    target = torch.zeros(2, 3, 3, dtype=D64)
    pred = target.clone()
    pred[0, 0] = torch.tensor([3.0, 4.0, 0.0])  # sample 0: one vertex 5 mm off
    pred[1, 1] = torch.tensor([0.0, 0.0, 2.0])  # sample 1: one vertex 2 mm off
    pred[1, 2] = torch.tensor([0.0, 0.0, 2.0])  # ... and another 2 mm off
    assert float(L.vertex_loss(pred, target)) == pytest.approx((5 + math.sqrt(8)) / 2)
    mean_vertex = L.vertex_loss(pred, target, reduction="mean_vertex")
    assert float(mean_vertex) == pytest.approx((5 / 3 + 4 / 3) / 2)
    assert float(L.vertex_loss(pred, target, region_idx=[1])) == pytest.approx((0 + 2) / 2)
    g = _gen(9)
    x = torch.randn(2, 4, 3, dtype=D64, generator=g, requires_grad=True)
    t = torch.randn(2, 4, 3, dtype=D64, generator=g)
    for reduction in ("mesh_norm", "mean_vertex"):
        assert torch.autograd.gradcheck(
            lambda z: L.vertex_loss(z, t, [0, 2, 3], reduction=reduction), (x,)
        )
    with pytest.raises(ValueError, match="region_idx"):
        L.vertex_loss(x, t, [7])
