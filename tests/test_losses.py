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


def test_kd_mse_logits_hand_value_and_gradient():
    # z_s / T = [0.2, 0], z_t / T = [1.2, -0.8]: differences [-1, 0.8]
    s = torch.tensor([[1.0, 0.0]], dtype=D64, requires_grad=True)
    t = torch.tensor([[6.0, -4.0]], dtype=D64)
    loss = L.kd_logit_loss(s, t, T=5.0, kind="mse_logits")
    assert loss.item() == pytest.approx((1.0 + 0.64) / 2)
    loss.backward()
    # dL/dz_s = 2 (z_s - z_t) / (T^2 B K) = 2 [-5, 4] / (25 * 1 * 2)
    torch.testing.assert_close(s.grad, torch.tensor([[-0.2, 0.16]], dtype=D64))
    assert L.kd_logit_loss(s, t, T=5.0).item() == loss.item()  # the default reading
    # batch of 2: the mean over B*K halves each row's gradient
    s2 = torch.tensor([[1.0, 0.0], [0.0, 0.0]], dtype=D64, requires_grad=True)
    t2 = torch.tensor([[6.0, -4.0], [0.0, 0.0]], dtype=D64)
    L.kd_logit_loss(s2, t2, T=5.0, kind="mse_logits").backward()
    torch.testing.assert_close(s2.grad, torch.tensor([[-0.1, 0.08], [0.0, 0.0]], dtype=D64))


def test_kd_mse_probs_hand_value_and_gradient():
    s = torch.tensor([[0.0, 0.0]], dtype=D64, requires_grad=True)  # softmax(s / 5) = [0.5, 0.5]
    t = torch.tensor([[5 * math.log(3.0), 0.0]], dtype=D64)  # softmax(t / 5) = [0.75, 0.25]
    loss = L.kd_logit_loss(s, t, T=5.0, kind="mse_probs")
    assert loss.item() == pytest.approx((0.25**2 + 0.25**2) / 2)
    loss.backward()
    # dL/dp = 2 (p_s - p_t) / K = [-0.25, 0.25]; dp/dz = (diag p - p p^T) / T = [[.25, -.25], [-.25, .25]] / 5
    # -> dL/dz = [-0.125, 0.125] / 5
    torch.testing.assert_close(s.grad, torch.tensor([[-0.025, 0.025]], dtype=D64))
    x = torch.randn(3, 4, dtype=D64, requires_grad=True, generator=_gen(3))
    tt = torch.randn(3, 4, dtype=D64, generator=_gen(4))
    assert torch.autograd.gradcheck(lambda z: L.kd_logit_loss(z, tt, T=5.0, kind="mse_probs"), (x,))


def test_kd_readings_differ_by_orders_of_magnitude_at_T5():
    """Why the default is "mse_logits": at T = 5 the softened 8-class distributions are nearly
    uniform: for logits of standard deviation 3 the probability MSE is ~1% of the logit MSE."""
    g = _gen(10)
    s, t = torch.randn(64, 8, dtype=D64, generator=g) * 3, torch.randn(64, 8, dtype=D64, generator=g) * 3
    logits = L.kd_logit_loss(s, t, T=5.0, kind="mse_logits").item()
    probs = L.kd_logit_loss(s, t, T=5.0, kind="mse_probs").item()
    assert logits == pytest.approx(float(((s - t) ** 2).mean()) / 25)
    assert probs < 0.03 * logits
    with pytest.raises(ValueError, match="kind must be one of"):
        L.kd_logit_loss(s, t, kind="mse")


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


def test_proto_kd_hand_gradient():
    """dL/ds = (q_stu - q) / tau for s = cos(f, p); through the L2 normalisation of a unit input x
    the gradient is projected: dL/dx = (I - x x^T) P^T (q_stu - q) / tau."""
    x = torch.tensor([[1.0, 0.0]], dtype=D64, requires_grad=True)
    p = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=D64)
    q = torch.tensor([0.5, 0.5], dtype=D64)
    L.proto_kd_loss(x, p, q, tau=0.5).backward()
    # s = [1, 0], q_stu = softmax([2, 0]); dL/ds = 2 (q_stu - q) = [tanh 1, -tanh 1]; the x-direction
    # component is removed by the normalisation, leaving [0, -tanh(1)]
    torch.testing.assert_close(x.grad, torch.tensor([[0.0, -math.tanh(1.0)]], dtype=D64))
    # a non-unit input: the gradient scales by 1/|x|
    x3 = torch.tensor([[3.0, 0.0]], dtype=D64, requires_grad=True)
    L.proto_kd_loss(x3, p, q, tau=0.5).backward()
    torch.testing.assert_close(x3.grad, torch.tensor([[0.0, -math.tanh(1.0) / 3]], dtype=D64))
    # q^pro equal to q_stu: zero gradient
    q_stu = torch.softmax(torch.tensor([2.0, 0.0], dtype=D64), 0)
    x0 = torch.tensor([[1.0, 0.0]], dtype=D64, requires_grad=True)
    L.proto_kd_loss(x0, p, q_stu, tau=0.5).backward()
    torch.testing.assert_close(x0.grad, torch.zeros(1, 2, dtype=D64))


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


def test_dgeo_hand_gradient():
    """Two positive points x1, x2 (class 0) and one point y (class 1):
    var = |x1 - x2|^2 / 4 so dL_var/dx1 = (x1 - x2) / 2; with d = |mu_0 - mu_1| < m the two ordered
    pairs give L_margin = 2 (m - d), so dL_margin/dx1 = -(mu_0 - mu_1) / d (mu_0 has weight 1/2 on
    x1) and dL_margin/dy = 2 (mu_0 - mu_1) / d."""
    feats = torch.tensor([[0.0, 0.0], [2.0, 0.0], [1.0, 0.5]], dtype=D64, requires_grad=True)
    labels = torch.tensor([0, 0, 1])
    L.dgeo_loss(feats, labels, [0], sigma_max=0.5, margin=1.0, alpha_var=2.0, alpha_mar=0.1).backward()
    # (mu_0 - mu_1) / d = (0, -0.5) / 0.5 = (0, -1)
    expected = torch.tensor([[2.0 * -1.0, 0.1 * 1.0], [2.0 * 1.0, 0.1 * 1.0], [0.0, 0.1 * -2.0]], dtype=D64)
    torch.testing.assert_close(feats.grad, expected)
    # inside both caps: no gradient at all
    relaxed = feats.detach().clone().requires_grad_(True)
    L.dgeo_loss(relaxed, labels, [0], sigma_max=1.5, margin=0.2).backward()
    torch.testing.assert_close(relaxed.grad, torch.zeros(3, 2, dtype=D64))


def test_dgeo_weight_schedule():
    # paper window 20 -> 60 for a 60-epoch run
    assert L.dgeo_weight(0, 60, paper_epochs=60) == 0.0
    assert L.dgeo_weight(19.9, 60, paper_epochs=60) == 0.0
    assert L.dgeo_weight(20, 60, paper_epochs=60) == pytest.approx(0.0)
    assert L.dgeo_weight(40, 60, paper_epochs=60) == pytest.approx(0.006)  # half-way: half the weight
    assert L.dgeo_weight(30, 60, paper_epochs=60) == pytest.approx(0.012 * (1 - math.cos(math.pi / 4)) / 2)
    assert L.dgeo_weight(60, 60, paper_epochs=60) == pytest.approx(0.012)
    assert L.dgeo_weight(80, 100) == pytest.approx(0.012)  # default: A3_full's 100 epochs; held after
    assert L.dgeo_weight(80, 100, hold_after_end=False) == 0.0
    # scaled to a 10-epoch run (default paper_epochs=100): window 2 -> 6; fractional epochs ramp per step
    assert L.dgeo_weight(1.99, 10) == 0.0
    assert L.dgeo_weight(4, 10) == pytest.approx(0.006)
    assert 0 < L.dgeo_weight(2.5, 10) < L.dgeo_weight(3.0, 10) < 0.006
    # monotone inside the window
    ws = [L.dgeo_weight(e, 60, paper_epochs=60) for e in range(20, 61)]
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
