"""The training API: resume equality, NaN guard, train-or-load, checkpoints, losses, SAM, data."""

from __future__ import annotations

import json
import math
import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from affectlab import losses
from affectlab import train as train_module
from affectlab.augment import AugmentConfig, BatchAugment
from affectlab.config import ConfigError
from affectlab.data.sets import FaceSet
from affectlab.train import (
    SAM,
    NonFiniteLossError,
    TensorData,
    TrainConfig,
    Trainer,
    fit,
    from_faceset,
    load_checkpoint,
    lr_factor,
    predict,
    resolve_amp,
    save_checkpoint,
)

QUIET = dict(progress=False, tensorboard=False)


def make_data(n: int = 48, batch_size: int = 16, seed: int = 0, augment: bool = False, classes: int = 3,
              **kwargs) -> TensorData:
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, 1, 6, 6), dtype=torch.uint8, generator=g)
    y = (x.float().mean(dim=(1, 2, 3)) > 127).long() + (x[:, 0, 0, 0] > 127).long()  # learnable, 3 classes
    y = y % classes
    aug = BatchAugment(AugmentConfig(crop_padding=1, hflip_p=0.5, erase_p=0.5)) if augment else None
    return TensorData(x, y, batch_size=batch_size, augment=aug, **kwargs)


class TinyMLP(nn.Sequential):
    def __init__(self, inputs: int = 36, classes: int = 3, dropout: float = 0.2) -> None:
        super().__init__(nn.Flatten(), nn.Linear(inputs, 16), nn.ReLU(), nn.Dropout(dropout), nn.Linear(16, classes))


class TinyCNN(nn.Module):
    """Returns a dict with logits and features, like the book's models."""

    def __init__(self, channels: int = 1, classes: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.head = nn.Linear(4, classes)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        features = F.relu(self.bn(self.conv(x))).mean(dim=(2, 3))
        return {"logits": self.head(features), "features": features}


def tiny_mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return TinyMLP()


def rng_term(outputs, batch, epoch):
    """Depends on Python's and NumPy's RNGs, so resume equality needs both restored."""
    return 1e-3 * (random.random() + float(np.random.rand())) * outputs["logits"].pow(2).mean()


# ---------------------------------------------------------------------------------------------
# resume, NaN guard, train-or-load, checkpoints
# ---------------------------------------------------------------------------------------------


class Interrupt(Exception):
    pass


def test_resume_after_interruption_gives_identical_weights(tmp_path):
    config = TrainConfig(epochs=4, lr=1e-2, warmup_epochs=1, **QUIET)
    terms = {"rng_term": rng_term}
    straight = fit(tiny_mlp(), make_data(augment=True), make_data(seed=1), config, extra_terms=terms,
                   run_dir=tmp_path / "straight", load_best=False)

    def stop_after_two(epoch, row):
        if epoch == 2:
            raise Interrupt

    with pytest.raises(Interrupt):
        fit(tiny_mlp(), make_data(augment=True), make_data(seed=1), config, extra_terms=terms,
            run_dir=tmp_path / "resumed", on_epoch_end=stop_after_two)
    assert load_checkpoint(tmp_path / "resumed" / "last.pt")["epoch"] == 2

    trained_epochs: list[int] = []
    torch.manual_seed(123)  # a different initialisation and RNG state: resume must not depend on them
    random.seed(5)
    np.random.seed(5)
    resumed = fit(tiny_mlp(seed=99), make_data(augment=True), make_data(seed=1), config, extra_terms=terms,
                  run_dir=tmp_path / "resumed", load_best=False,
                  on_epoch_end=lambda epoch, row: trained_epochs.append(epoch))
    assert trained_epochs == [3, 4]  # resumed, not restarted
    assert not resumed.loaded_from_cache
    assert list(resumed.history["epoch"]) == [1, 2, 3, 4]
    for (name, a), (_, b) in zip(straight.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(a, b), f"parameter {name} differs after resume"
    np.testing.assert_array_equal(straight.history["loss"].to_numpy(), resumed.history["loss"].to_numpy())


def test_nan_loss_stops_with_epoch_and_step(tmp_path):
    calls = {"n": 0}

    def nan_at_third_step(outputs, batch, epoch):
        calls["n"] += 1
        bad = epoch == 1 and calls["n"] == 3
        return torch.tensor(float("nan") if bad else 0.0)

    with pytest.raises(NonFiniteLossError, match=r"epoch 1, step 3") as info:
        fit(tiny_mlp(), make_data(), None, TrainConfig(epochs=2, **QUIET), extra_terms={"nan_term": nan_at_third_step},
            run_dir=tmp_path)
    assert "nan_term" in str(info.value)
    assert isinstance(info.value, RuntimeError)


def test_train_or_load_hits_the_cache_and_retrains_on_a_changed_config():
    config = TrainConfig(epochs=2, lr=1e-2, **QUIET)
    key = {"model": "TinyMLP", "init_seed": 0, "test": "cache"}
    epochs_run: list[int] = []
    first = fit(tiny_mlp(), make_data(), make_data(seed=1), config, key=key, name="cache-test",
                on_epoch_end=lambda e, r: epochs_run.append(e))
    assert not first.loaded_from_cache and epochs_run == [1, 2]
    assert first.run_dir.name == f"cache-test-{first.config_hash}"
    assert (first.run_dir / "config.json").is_file() and (first.run_dir / "history.csv").is_file()

    second = fit(tiny_mlp(seed=7), make_data(), make_data(seed=1), config, key=key, name="cache-test",
                 on_epoch_end=lambda e, r: epochs_run.append(e))
    assert second.loaded_from_cache and epochs_run == [1, 2]  # nothing trained
    assert second.config_hash == first.config_hash
    for a, b in zip(first.model.state_dict().values(), second.model.state_dict().values()):
        assert torch.equal(a, b)
    assert second.history.equals(first.history)

    changed = fit(tiny_mlp(), make_data(), make_data(seed=1), TrainConfig(epochs=2, lr=5e-3, **QUIET), key=key,
                  name="cache-test")
    assert not changed.loaded_from_cache and changed.config_hash != first.config_hash
    other_key = fit(tiny_mlp(), make_data(), make_data(seed=1), config, key={**key, "init_seed": 1},
                    name="cache-test")
    assert not other_key.loaded_from_cache and other_key.config_hash != first.config_hash
    other_data = fit(tiny_mlp(), make_data(seed=3), make_data(seed=1), config, key=key, name="cache-test")
    assert not other_data.loaded_from_cache and other_data.config_hash != first.config_hash
    quiet_flags = TrainConfig(epochs=2, lr=1e-2, progress=True, tensorboard=False)
    assert fit(tiny_mlp(), make_data(), make_data(seed=1), quiet_flags, key=key, name="cache-test").loaded_from_cache


def test_run_dir_holding_another_config_is_an_error(tmp_path):
    fit(tiny_mlp(), make_data(), None, TrainConfig(epochs=1, **QUIET), run_dir=tmp_path)
    with pytest.raises(ConfigError, match="config hash"):
        fit(tiny_mlp(), make_data(), None, TrainConfig(epochs=1, lr=1e-3, **QUIET), run_dir=tmp_path)
    again = fit(tiny_mlp(), make_data(), None, TrainConfig(epochs=1, lr=1e-3, **QUIET), run_dir=tmp_path, retrain=True)
    assert not again.loaded_from_cache


def test_checkpoints_load_with_weights_only(tmp_path):
    result = fit(TinyCNN(), make_data(), make_data(seed=1), TrainConfig(epochs=2, lr=1e-2, progress=False),
                 run_dir=tmp_path)
    last = torch.load(result.last_path, weights_only=True)
    best = torch.load(result.best_path, weights_only=True)
    assert last["finished"] is True and last["epoch"] == 2
    assert set(last) >= {"model", "optimizer", "scheduler", "scaler", "rng", "data", "history", "config_json"}
    assert json.loads(last["config_json"])["train"]["epochs"] == 2
    assert best["monitor"] == "macro_f1" and best["epoch"] == result.best_epoch
    assert result.best_value == max(result.history["val_macro_f1"])
    for name, value in result.model.state_dict().items():  # best weights loaded into the model
        assert torch.equal(value, best["model"][name])
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))  # TensorBoard log written
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "config.json", "history.csv", "last.pt", "tb"]


def test_atomic_save_leaves_old_checkpoint_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "ck.pt"
    good = {"format": train_module.CHECKPOINT_FORMAT, "w": torch.arange(4.0)}
    replaced: list[tuple[str, str]] = []
    real_replace = os.replace

    def spy_replace(src, dst):
        replaced.append((str(src), str(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(train_module.os, "replace", spy_replace)
    save_checkpoint(good, path)
    (src, dst), = replaced
    assert Path(src).parent == Path(dst).parent and Path(src) != Path(dst)  # temp file in the same dir

    with pytest.raises(Exception):
        save_checkpoint({"format": train_module.CHECKPOINT_FORMAT, "w": torch.zeros(4), "bad": lambda: 0}, path)
    assert [p.name for p in tmp_path.iterdir()] == ["ck.pt"]  # no temp file left
    assert torch.equal(load_checkpoint(path)["w"], torch.arange(4.0))  # old checkpoint intact


# ---------------------------------------------------------------------------------------------
# losses, extra terms, metrics
# ---------------------------------------------------------------------------------------------


def first_batch(data: TensorData) -> dict[str, torch.Tensor]:
    return next(data.batches("cpu", train=False))


def test_class_weights_and_label_smoothing_reach_the_loss():
    weights, eps = (1.0, 2.0, 0.5), 0.1
    config = TrainConfig(class_weights=weights, label_smoothing=eps, **QUIET)
    model = tiny_mlp().eval()
    trainer = Trainer(model, config, steps_per_epoch=1)
    trainer.model.eval()
    batch = first_batch(make_data())
    _, parts, outputs = trainer.losses(batch, epoch=1)
    logits, y = outputs["logits"], batch["y"]
    # by hand: q = (1 - eps) one-hot + eps / K; loss = sum_n sum_c w_c q_nc (-log p_nc) / sum_n w_{y_n}
    w = torch.tensor(weights)
    k = logits.shape[1]
    q = (1 - eps) * F.one_hot(y, k).float() + eps / k
    by_hand = (-(w * q * logits.log_softmax(1)).sum(1)).sum() / w[y].sum()
    assert torch.allclose(parts["task_loss"], by_hand, atol=1e-6)
    assert torch.allclose(parts["task_loss"], F.cross_entropy(logits, y, weight=w, label_smoothing=eps), atol=1e-6)
    plain = Trainer(tiny_mlp().eval(), TrainConfig(**QUIET), steps_per_epoch=1)
    plain.model.eval()
    assert not torch.allclose(plain.losses(batch, 1)[1]["task_loss"], parts["task_loss"])


def test_soft_targets_reach_the_loss_through_losses_soft_target_ce(monkeypatch):
    data = make_data()
    soft = torch.softmax(torch.randn(data.num_samples, 3, generator=torch.Generator().manual_seed(0)), 1)
    data = TensorData(data.x, data.y, soft=soft, batch_size=16)
    trainer = Trainer(tiny_mlp(), TrainConfig(target="soft", label_smoothing=0.1, **QUIET), steps_per_epoch=1)
    trainer.model.eval()
    batch = first_batch(data)
    calls = []
    monkeypatch.setattr(train_module, "soft_target_ce", lambda *a: calls.append(a) or losses.soft_target_ce(*a))
    _, parts, outputs = trainer.losses(batch, 1)
    assert len(calls) == 1  # the one soft-target CE of the package, not a copy
    smoothed = 0.9 * batch["soft"] + 0.1 / 3
    by_hand = (-(smoothed * outputs["logits"].log_softmax(1)).sum(1)).mean()
    assert torch.allclose(parts["task_loss"], by_hand, atol=1e-6)
    assert torch.allclose(parts["task_loss"], F.cross_entropy(outputs["logits"], batch["soft"], label_smoothing=0.1),
                          atol=1e-6)
    with pytest.raises(ConfigError, match="class_weights"):
        TrainConfig(target="soft", class_weights=(1.0, 2.0, 3.0))


def test_extra_terms_see_outputs_batch_epoch_and_are_logged(tmp_path):
    seen = []

    def features_term(outputs, batch, epoch):
        seen.append((epoch, sorted(outputs), sorted(batch)))
        return 0.25 * torch.ones(())

    data = make_data(extras={"va": torch.zeros(48, 2)})
    result = fit(TinyCNN(), data, None, TrainConfig(epochs=2, lr=1e-2, **QUIET), run_dir=tmp_path,
                 extra_terms={"quarter": features_term})
    assert [s[0] for s in seen] == [1, 1, 1, 2, 2, 2]
    assert seen[0][1] == ["features", "logits"] and seen[0][2] == ["index", "va", "x", "y"]
    history = result.history
    assert np.allclose(history["quarter"], 0.25)
    assert np.allclose(history["loss"], history["task_loss"] + 0.25)
    assert {"epoch", "lr", "seconds", "train_accuracy"} <= set(history.columns)
    csv_columns = (tmp_path / "history.csv").read_text().splitlines()[0].split(",")
    assert "quarter" in csv_columns


def test_regression_with_dict_outputs_and_predict_features(tmp_path):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, 5, generator=g)
    target = torch.stack([x[:, 0], x[:, 1] - x[:, 2]], 1)

    class Regressor(nn.Module):
        def __init__(self):
            super().__init__()
            self.body, self.out = nn.Linear(5, 8), nn.Linear(8, 2)

        def forward(self, x):
            features = torch.tanh(self.body(x))
            return {"pred": self.out(features), "features": features}

    torch.manual_seed(0)
    data = TensorData(x, target, batch_size=10)
    result = fit(Regressor(), data, TensorData(x, target, batch_size=10),
                 TrainConfig(epochs=3, lr=3e-2, task="regression", **QUIET), run_dir=tmp_path)
    assert result.monitor == "ccc"
    assert {"val_mse", "val_mae", "val_ccc"} <= set(result.history.columns)
    assert result.history["task_loss"].iloc[-1] < result.history["task_loss"].iloc[0]
    preds = predict(result.model, data, "cpu")
    assert preds.kind == "pred" and preds.outputs.shape == (40, 2) and preds.features.shape == (40, 8)
    assert torch.equal(preds.labels, target) and torch.equal(preds.index, torch.arange(40))
    mse = float(((preds.outputs - target) ** 2).mean())
    assert math.isclose(mse, result.history.loc[result.history["epoch"] == result.best_epoch, "val_mse"].item(),
                        rel_tol=1e-5)


def test_exponential_schedule_and_warmup_cosine_lr():
    result = fit(tiny_mlp(), make_data(), None,
                 TrainConfig(epochs=3, lr=0.1, schedule="exponential", gamma=0.5, **QUIET),
                 run_dir=Path(os.environ["AFFECTLAB_RUNS"]) / "exp-schedule", retrain=True)
    assert np.allclose(result.history["lr"], [0.1, 0.05, 0.025])
    kwargs = dict(schedule="cosine", total_steps=10, warmup_steps=2, min_lr_ratio=0.1, gamma=1.0, steps_per_epoch=5)
    factors = [lr_factor(s, **kwargs) for s in range(11)]
    assert factors[:2] == [0.5, 1.0] and factors[2] == 1.0
    assert math.isclose(factors[6], 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert math.isclose(factors[10], 0.1)
    assert all(a >= b for a, b in zip(factors[2:], factors[3:]))


@pytest.mark.parametrize(
    "field, value",
    [("lr", -0.1), ("amp", "fp8"), ("epochs", 0), ("schedule", "step"), ("optimizer", "sgd"),
     ("label_smoothing", 1.0), ("monitor", "ccc"), ("class_weights", (1.0, -1.0)), ("grad_clip", 0),
     ("warmup_epochs", 10), ("seed", -1), ("steps_per_epoch", 0)],
)
def test_bad_config_values_name_the_field(field, value):
    with pytest.raises(ConfigError, match=rf"TrainConfig\.{field}"):
        TrainConfig(**{field: value})


def test_sam_with_fp16_and_regression_with_smoothing_are_rejected():
    with pytest.raises(ConfigError, match="amp"):
        TrainConfig(optimizer="sam", amp="fp16")
    with pytest.raises(ConfigError, match="task"):
        TrainConfig(task="regression", label_smoothing=0.1)


def test_class_weights_of_the_wrong_length_name_the_field(tmp_path):
    with pytest.raises(ConfigError, match="class_weights"):
        fit(tiny_mlp(), make_data(), None, TrainConfig(epochs=1, class_weights=(1.0, 1.0), **QUIET), run_dir=tmp_path)


# ---------------------------------------------------------------------------------------------
# SAM
# ---------------------------------------------------------------------------------------------


def test_sam_step_matches_the_hand_computed_quadratic_case():
    # L(w) = 0.5 w^T A w, A = diag(1, 4), w0 = (1, 1): g = (1, 4), ||g|| = sqrt(17)
    # e = rho g / ||g||, w' = w0 + e, g' = A w', w1 = w0 - lr g'   (base optimiser: plain SGD)
    a = torch.tensor([1.0, 4.0], dtype=torch.float64)
    w = torch.tensor([1.0, 1.0], dtype=torch.float64, requires_grad=True)
    rho, lr = 0.1, 0.1
    sam = SAM([w], torch.optim.SGD, rho=rho, lr=lr)

    def closure():
        sam.zero_grad()
        loss = 0.5 * (a * w * w).sum()
        loss.backward()
        return loss

    loss = sam.step(closure)
    e = rho * torch.tensor([1.0, 4.0], dtype=torch.float64) / math.sqrt(17)
    expected = torch.tensor([1.0, 1.0], dtype=torch.float64) - lr * a * (1 + e)
    assert math.isclose(float(loss.detach()), 2.5)
    assert torch.allclose(w.detach(), expected, atol=1e-12)
    plain_sgd = torch.tensor([1.0, 1.0], dtype=torch.float64) - lr * a
    assert not torch.allclose(w.detach(), plain_sgd)


def test_trainer_sam_over_adamw_matches_hand_computed_steps():
    """The chapter-04 path: Trainer.train_step with optimizer='sam' (base AdamW, weight decay).
    L(w) = (x . w - y)^2 for one sample x = (1, 2), y = 0: g(w) = 2 (x . w) x. Each SAM step takes
    g' = g(w + rho g / ||g||) and AdamW steps with it: m = b1 m + (1 - b1) g', v = b2 v + (1 - b2) g'^2,
    w <- w (1 - lr wd) - lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps). Two steps, because the
    first AdamW step is lr * sign(g') and cannot tell SAM's gradient from the plain one."""

    class Linear1(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(torch.tensor([0.5, -0.1]))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return (x * self.w).sum(dim=1)

    lr, wd, rho, eps, (b1, b2) = 0.05, 0.1, 0.05, 1e-8, (0.9, 0.999)
    model = Linear1()
    config = TrainConfig(epochs=1, lr=lr, weight_decay=wd, optimizer="sam", sam_rho=rho, schedule="constant",
                         task="regression", grad_clip=None, amp="off", **QUIET)
    trainer = Trainer(model, config, steps_per_epoch=2)
    x, y = torch.tensor([[1.0, 2.0]]), torch.tensor([0.0])
    for _ in range(2):
        trainer.train_step({"x": x, "y": y, "index": torch.tensor([0])})

    xv = torch.tensor([1.0, 2.0], dtype=torch.float64)

    def grad(w: torch.Tensor) -> torch.Tensor:
        return 2 * (xv @ w) * xv

    def adamw(sharpness_aware: bool) -> torch.Tensor:
        w, m, v = torch.tensor([0.5, -0.1], dtype=torch.float64), 0.0, 0.0
        for t in (1, 2):
            g = grad(w)
            if sharpness_aware:
                g = grad(w + rho * g / g.norm())
            m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
            w = w * (1 - lr * wd) - lr * (m / (1 - b1**t)) / ((v / (1 - b2**t)).sqrt() + eps)
        return w

    expected = adamw(sharpness_aware=True)
    assert torch.allclose(model.w.detach().double(), expected, atol=1e-6)
    assert not torch.allclose(adamw(sharpness_aware=False), expected, atol=1e-4)  # the check can fail


def test_sam_restores_weights_exactly_between_passes():
    w = torch.tensor([0.3, -1.7, 2.9], requires_grad=True)
    sam = SAM([w], torch.optim.SGD, rho=0.05, lr=0.0)  # lr 0: the base step leaves w where it was
    before = w.detach().clone()
    (w ** 3).sum().backward()
    sam.first_step()
    assert not torch.equal(w.detach(), before)
    sam.zero_grad()
    (w ** 3).sum().backward()
    sam.second_step()
    assert torch.equal(w.detach(), before)


def test_sam_in_the_trainer_keeps_batchnorm_stats_to_one_update(tmp_path):
    torch.manual_seed(0)
    model = TinyCNN()
    reference = TinyCNN()
    reference.load_state_dict(model.state_dict())
    trainer = Trainer(model, TrainConfig(optimizer="sam", sam_rho=0.05, weight_decay=1e-4, lr=1e-2, **QUIET),
                      steps_per_epoch=3)
    batch = first_batch(make_data())
    before = [p.detach().clone() for p in model.parameters()]
    trainer.train_step(batch)
    reference.train()(batch["x"])  # a single BN update on the same batch
    assert torch.allclose(model.bn.running_mean, reference.bn.running_mean)
    assert any(not torch.equal(b, p) for b, p in zip(before, model.parameters()))
    result = fit(TinyCNN(), make_data(), None, TrainConfig(epochs=2, optimizer="sam", **QUIET), run_dir=tmp_path)
    assert np.isfinite(result.history["loss"]).all()


# ---------------------------------------------------------------------------------------------
# data module, amp, predict
# ---------------------------------------------------------------------------------------------


def test_tensor_data_converts_resizes_repeats_and_normalises():
    x = torch.full((5, 1, 4, 4), 255, dtype=torch.uint8)
    x[0] = 0
    data = TensorData(x, torch.arange(5), batch_size=2, resize=8, channels=3, mean=0.5, std=0.25, shuffle=False)
    batches = list(data.batches("cpu", train=True))
    assert [len(b["x"]) for b in batches] == [2, 2, 1]
    first = batches[0]["x"]
    assert first.shape == (2, 3, 8, 8) and first.dtype == torch.float32
    assert torch.allclose(first[0], torch.full((3, 8, 8), -2.0)) and torch.allclose(first[1], torch.full((3, 8, 8), 2.0))
    assert data.output_shape == (3, 8, 8) and data.input_side == 8
    assert torch.equal(torch.cat([b["index"] for b in batches]), torch.arange(5))


def test_tensor_data_shuffles_by_seed_and_drops_last():
    data = make_data(n=10, batch_size=4, drop_last=True)
    order = [torch.cat([b["index"] for b in data.batches(train=True)]) for _ in range(2)]
    assert len(order[0]) == 8 and not torch.equal(order[0], order[1])
    data.seed(0)
    again = torch.cat([b["index"] for b in data.batches(train=True)])
    assert torch.equal(again, order[0])
    evaluation = torch.cat([b["index"] for b in data.batches(train=False)])
    assert torch.equal(evaluation, torch.arange(10))  # eval: ordered, nothing dropped


def test_tensor_data_rejects_bad_input():
    x = torch.zeros(4, 1, 4, 4, dtype=torch.uint8)
    with pytest.raises(ValueError, match="y has 3 rows"):
        TensorData(x, torch.zeros(3))
    with pytest.raises(ValueError, match="batch_size"):
        TensorData(x, torch.zeros(4), batch_size=0)
    with pytest.raises(ValueError, match="reserved"):
        TensorData(x, torch.zeros(4), extras={"index": torch.zeros(4)})
    with pytest.raises(ValueError, match="4-D"):
        TensorData(torch.zeros(4, 3), torch.zeros(4), resize=8)


def test_from_faceset_uses_labels_soft_labels_and_drops_unknown(tmp_path):
    images = torch.randint(0, 256, (6, 1, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([0, 1, -1, 2, 1, 0])
    soft = torch.softmax(torch.randn(6, 3), 1)
    faces = FaceSet(images, labels, ("a", "b", "c"), name="toy", split="train", source="generated: test",
                    soft_labels=soft, valence=torch.linspace(-1, 1, 6), arousal=torch.zeros(6))
    data = from_faceset(faces, soft=True, extras=("va",), batch_size=4, resize=12, channels=3)
    assert data.num_samples == 5 and data.name == "toy/train"
    batch = first_batch(data)
    assert set(batch) == {"x", "y", "index", "soft", "va"} and batch["va"].shape == (4, 2)
    assert batch["x"].shape == (4, 3, 12, 12)
    assert (data.y >= 0).all()
    result = fit(nn.Sequential(nn.Flatten(), nn.Linear(432, 3)), data, None,
                 TrainConfig(epochs=1, target="soft", **QUIET), run_dir=tmp_path)
    assert np.isfinite(result.history["task_loss"]).all()
    va = from_faceset(faces, target="va")
    assert va.y.shape == (6, 2) and va.y.dtype == torch.float32
    with pytest.raises(ValueError, match="toy/train has no identity"):
        from_faceset(faces, extras=("identity",))


def test_amp_auto_is_decided_by_cpu_flags_and_a_measurement(monkeypatch):
    cpu = torch.device("cpu")
    model, example = TinyCNN(), torch.rand(4, 1, 12, 12)
    assert resolve_amp("off", cpu, 112) is None
    assert resolve_amp("bf16", cpu, 48) is torch.bfloat16
    monkeypatch.setattr(train_module, "_AMP_PROBES", {})
    monkeypatch.setattr(train_module, "cpu_has_native_bf16", lambda: False)

    def no_probe(*args, **kwargs):
        raise AssertionError("no probe without native bf16")

    monkeypatch.setattr(train_module, "probe_cpu_bf16", no_probe)
    assert resolve_amp("auto", cpu, 112, model=model, example_input=example) is None
    monkeypatch.setattr(train_module, "cpu_has_native_bf16", lambda: True)
    assert resolve_amp("auto", cpu, 112) is None  # native bf16 but nothing measured: stays fp32
    for speedup, expected in ((1.5, torch.bfloat16), (1.02, None), (0.6, None)):
        monkeypatch.setattr(train_module, "probe_cpu_bf16", lambda *a, s=speedup, **k: {"use_bf16": s >= 1.1})
        assert resolve_amp("auto", cpu, 12, model=model, example_input=example) is expected
    with pytest.raises(ConfigError, match="amp"):
        resolve_amp("half", cpu, 48)


def test_bf16_probe_times_both_precisions_and_leaves_model_and_rng_alone(monkeypatch, tmp_path):
    monkeypatch.setattr(train_module, "_AMP_PROBES", {})
    monkeypatch.setenv("AFFECTLAB_CACHE", str(tmp_path))
    model = TinyCNN()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    torch.manual_seed(5)
    expected_next = torch.rand(3)
    torch.manual_seed(5)
    probe = train_module.probe_cpu_bf16(model, torch.rand(4, 1, 12, 12, generator=torch.Generator()), steps=1)
    assert torch.equal(torch.rand(3), expected_next)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert probe["fp32_s"] > 0 and probe["bf16_s"] > 0
    assert probe["use_bf16"] == (probe["speedup"] >= train_module.AMP_PROBE_MIN_SPEEDUP)
    info = train_module.cpu_info()
    assert set(info) >= {"model", "flags", "native_bf16"}
    assert info["native_bf16"] == bool({"avx512_bf16", "amx_bf16"} & set(info["flags"])) or info["torch_amx_tiles"]


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_autocast_and_channels_last_train_on_cpu(tmp_path, amp):
    result = fit(TinyCNN(), make_data(), make_data(seed=1),
                 TrainConfig(epochs=1, amp=amp, channels_last=True, lr=1e-2, **QUIET), run_dir=tmp_path)
    assert np.isfinite(result.history["loss"]).all()
    assert result.model.conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert result.model.conv.weight.dtype == torch.float32  # autocast, not a cast of the weights


def test_predict_is_batched_in_eval_mode_without_grad_and_restores_mode():
    model = TinyCNN().train()
    data = make_data(n=20, batch_size=8)
    preds = predict(model, data, "cpu")
    assert model.training
    assert preds.kind == "logits" and preds.outputs.shape == (20, 3) and not preds.outputs.requires_grad
    assert preds.features.shape == (20, 4) and torch.equal(preds.labels, data.y)
    model.eval()
    with torch.no_grad():
        direct = model(data.convert(data.x, torch.device("cpu")))["logits"]
    assert torch.allclose(preds.outputs, direct, atol=1e-6)
    assert torch.equal(preds.predicted_classes, direct.argmax(1))


def test_tensor_data_normalises_channels_of_non_image_inputs():
    eeg = torch.randn(4, 2, 5)
    data = TensorData(eeg, torch.zeros(4, dtype=torch.long), mean=[1.0, 2.0], std=[1.0, 0.5], shuffle=False)
    x = first_batch(data)["x"]
    assert torch.allclose(x[:, 0], eeg[:, 0] - 1.0) and torch.allclose(x[:, 1], (eeg[:, 1] - 2.0) / 0.5)
    assert data.input_side is None  # not images: amp='auto' stays off on CPU
    with pytest.raises(ValueError, match="3 values for 2 channels"):
        TensorData(eeg, mean=[0.0, 0.0, 0.0], std=1.0)


def test_extra_term_names_must_not_clash_with_history_columns():
    with pytest.raises(ConfigError, match="val_loss"):
        Trainer(tiny_mlp(), TrainConfig(**QUIET), steps_per_epoch=1, extra_terms={"val_loss": rng_term})


def test_bf16_probe_is_measured_once_per_machine_and_model(monkeypatch, tmp_path):
    monkeypatch.setattr(train_module, "_AMP_PROBES", {})
    monkeypatch.setenv("AFFECTLAB_CACHE", str(tmp_path))
    model, x = TinyCNN(), torch.rand(4, 1, 12, 12)
    first = train_module.probe_cpu_bf16(model, x, steps=1)
    assert (tmp_path / "amp_probes.json").exists()
    monkeypatch.setattr(train_module, "_AMP_PROBES", {})  # a new process
    monkeypatch.setattr(train_module.time, "perf_counter", lambda: (_ for _ in ()).throw(AssertionError("timed again")))
    assert train_module.probe_cpu_bf16(model, x, steps=1) == first
    other = dict(train_module.cpu_info(), model="another CPU")
    monkeypatch.setattr(train_module, "cpu_info", lambda: other)
    monkeypatch.setattr(train_module, "_AMP_PROBES", {})
    with pytest.raises(AssertionError, match="timed again"):
        train_module.probe_cpu_bf16(model, x, steps=1)
