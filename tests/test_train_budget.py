"""Issue 13 / 12 trainer items: the wall-clock budget and its schedule (with resume), the one-cycle
schedule, code-aware run keys, corrupt-checkpoint errors, progress on stderr and the FER recipe.

Budgets are tested with a fake clock (each call of ``affectlab.train._now`` advances it by a fixed
step), so nothing here depends on the machine's speed."""

from __future__ import annotations

import importlib.util
import itertools
import math
import sys

import numpy as np
import pytest
import torch
from torch import nn

from affectlab import train as train_module
from affectlab.augment import BatchAugment
from affectlab.config import ConfigError, code_files
from affectlab.config import code_fingerprint as package_code_fingerprint
from affectlab.data.sets import FaceSet
from affectlab.train import (
    CorruptCheckpointError,
    TrainConfig,
    fer_recipe,
    fer_recipe_data,
    fit,
    load_checkpoint,
    lr_factor,
    run_code_fingerprint,
)
from test_train import QUIET, Interrupt, make_data, rng_term, tiny_mlp


TICK = 2.0 ** -6  # exact in binary, so sums of clock differences do not depend on the clock's offset


def fake_clock(monkeypatch, tick: float = TICK) -> None:
    """Every call of the trainer's clock advances it by ``tick`` seconds: a step costs one tick."""
    counter = itertools.count()
    monkeypatch.setattr(train_module, "_now", lambda: next(counter) * tick)


BUDGET = dict(epochs=40, lr=1e-2, schedule="onecycle", warmup_fraction=0.25, budget_s=30 * TICK, **QUIET)


# ---------------------------------------------------------------------------------------------
# schedules and budget
# ---------------------------------------------------------------------------------------------


def test_onecycle_rises_from_lr_over_25_to_the_peak_then_anneals_to_min():
    kwargs = dict(schedule="onecycle", total_steps=100, warmup_steps=25, min_lr_ratio=0.0, gamma=1.0,
                  steps_per_epoch=10)
    factors = [lr_factor(s, **kwargs) for s in range(101)]
    assert factors[0] == pytest.approx(1 / 25)
    assert max(factors) == pytest.approx(1.0) and int(np.argmax(factors)) == 25
    assert all(a <= b for a, b in zip(factors[:25], factors[1:26]))  # rising warm-up
    assert all(a >= b for a, b in zip(factors[25:], factors[26:]))  # annealing
    assert factors[100] == pytest.approx(0.0, abs=1e-12)


def test_budget_plans_the_steps_and_lays_the_schedule_over_them(tmp_path, monkeypatch):
    fake_clock(monkeypatch)
    result = fit(tiny_mlp(), make_data(), make_data(seed=1), TrainConfig(**BUDGET), run_dir=tmp_path / "a",
                 load_best=False)
    last = load_checkpoint(tmp_path / "a" / "last.pt")
    steps = int(result.history["steps"].sum())
    assert last["finished"] and len(result.history) < BUDGET["epochs"]  # the budget, not the epochs, ended it
    assert last["budget"]["steps_done"] == steps == last["total_steps"]  # schedule laid over the steps done
    assert last["budget"]["elapsed_s"] <= BUDGET["budget_s"] + TICK
    # a tick per step, a tick of setup and a tick of evaluation per 3-step epoch: about 29 / (1 + 1/3)
    assert 19 <= steps <= 23
    # annealed to the end: the lr after the last step is < 2% of the peak (the plan's last change
    # comes after that step's schedule step, so it may trail the final plan by a step or two)
    assert last["optimizer"]["param_groups"][0]["lr"] < 0.02 * BUDGET["lr"]
    assert result.history["lr"].iloc[-1] < 0.5 * result.history["lr"].max()

    fake_clock(monkeypatch, tick=TICK / 2)  # twice as fast a machine: about twice the steps, same budget
    faster = fit(tiny_mlp(), make_data(), make_data(seed=1), TrainConfig(**BUDGET), run_dir=tmp_path / "b")
    assert 1.8 * steps <= int(faster.history["steps"].sum()) <= 2.2 * steps


def test_budgeted_run_resumes_to_identical_weights(tmp_path, monkeypatch):
    fake_clock(monkeypatch)
    config = TrainConfig(**BUDGET)
    terms = {"rng_term": rng_term}
    straight = fit(tiny_mlp(), make_data(augment=True), make_data(seed=1), config, extra_terms=terms,
                   run_dir=tmp_path / "straight", load_best=False)
    assert len(straight.history) > 3

    def stop_after_two(epoch, row):
        if epoch == 2:
            raise Interrupt

    with pytest.raises(Interrupt):
        fit(tiny_mlp(), make_data(augment=True), make_data(seed=1), config, extra_terms=terms,
            run_dir=tmp_path / "resumed", on_epoch_end=stop_after_two)
    torch.manual_seed(123)
    resumed = fit(tiny_mlp(seed=99), make_data(augment=True), make_data(seed=1), config, extra_terms=terms,
                  run_dir=tmp_path / "resumed", load_best=False)
    assert not resumed.loaded_from_cache
    assert list(resumed.history["epoch"]) == list(straight.history["epoch"])
    for (name, a), (_, b) in zip(straight.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(a, b), f"parameter {name} differs after a budgeted resume"
    np.testing.assert_array_equal(straight.history["lr"].to_numpy(), resumed.history["lr"].to_numpy())


def test_budget_and_warmup_fields_are_checked():
    for changes in ({"budget_s": 0}, {"budget_s": -1.0}, {"budget_s": math.inf}, {"warmup_fraction": 1.0},
                    {"warmup_fraction": 0.2, "warmup_epochs": 1}):
        field = next(iter(changes)) if "warmup_epochs" not in changes else "warmup_fraction"
        with pytest.raises(ConfigError, match=field):
            TrainConfig(epochs=5, **changes)


# ---------------------------------------------------------------------------------------------
# code-aware run keys (issue 12, section 2)
# ---------------------------------------------------------------------------------------------


def import_term(path, source: str, module_name: str):
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module.penalty


TERM_V1 = "def penalty(outputs, batch, epoch):\n    return 0.01 * outputs['logits'].pow(2).mean()\n"
TERM_V2 = "def penalty(outputs, batch, epoch):\n    return 0.02 * outputs['logits'].abs().mean()  # edited\n"


def test_changing_a_loss_terms_source_forces_a_retrain_and_an_unchanged_rerun_loads(tmp_path, monkeypatch):
    monkeypatch.setenv("AFFECTLAB_RUNS", str(tmp_path / "runs"))
    config = TrainConfig(epochs=1, **QUIET)

    def run(term):
        return fit(tiny_mlp(), make_data(), None, config, extra_terms={"penalty": term}, name="codekey")

    first = run(import_term(tmp_path / "term_a.py", TERM_V1, "affectlab_test_term_a"))
    again = run(import_term(tmp_path / "term_b.py", TERM_V1, "affectlab_test_term_b"))  # same source, new object
    assert not first.loaded_from_cache and again.loaded_from_cache and again.config_hash == first.config_hash
    edited = run(import_term(tmp_path / "term_c.py", TERM_V2, "affectlab_test_term_c"))
    assert not edited.loaded_from_cache and edited.config_hash != first.config_hash


def test_code_fingerprint_covers_the_package_model_classes_and_torch(monkeypatch):
    class Outside(nn.Linear):
        pass

    fingerprint = run_code_fingerprint(nn.Sequential(Outside(2, 2)), {"term": rng_term})
    assert fingerprint["affectlab"] == package_code_fingerprint("affectlab.train")
    assert "affectlab.losses" in code_files("affectlab.train") and "affectlab.augment" in code_files("affectlab.train")
    assert any(name.endswith("Outside") for name in fingerprint["model_classes"])
    assert fingerprint["libraries"]["torch"] == torch.__version__ and set(fingerprint["extra_terms"]) == {"term"}
    seen = []
    monkeypatch.setattr(train_module, "package_code_fingerprint", lambda *names: seen.append(names) or "edited")
    assert run_code_fingerprint(FaceModelStandIn())["affectlab"] == "edited"
    assert "affectlab.augment" in seen[-1]  # an affectlab model class's module is fingerprinted too
    monkeypatch.setattr(torch, "__version__", "0.0-other")
    assert run_code_fingerprint(nn.Linear(2, 2))["libraries"]["torch"] == "0.0-other"


class FaceModelStandIn(nn.Sequential):
    """A model holding a submodule class defined in the package (BatchAugment is an nn.Module)."""

    def __init__(self) -> None:
        super().__init__(BatchAugment(), nn.Linear(2, 2))


# ---------------------------------------------------------------------------------------------
# corrupt checkpoints (issue 12, section 4) and progress (section 5)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["last.pt", "best.pt"])
def test_corrupt_checkpoint_names_the_file_and_the_way_out(tmp_path, which):
    config = TrainConfig(epochs=1, **QUIET)
    fit(tiny_mlp(), make_data(), make_data(seed=1), config, run_dir=tmp_path)
    (tmp_path / which).write_bytes(b"not a checkpoint, truncated")
    with pytest.raises(CorruptCheckpointError) as error:
        fit(tiny_mlp(), make_data(), make_data(seed=1), config, run_dir=tmp_path)
    message = str(error.value)
    assert str(tmp_path / which) in message and "retrain=True" in message and "delete the run folder" in message
    retrained = fit(tiny_mlp(), make_data(), make_data(seed=1), config, run_dir=tmp_path, retrain=True)
    assert not retrained.loaded_from_cache


def test_progress_bar_and_epoch_lines_go_to_stderr_only(tmp_path, capsys):
    fit(tiny_mlp(), make_data(), make_data(seed=1), TrainConfig(epochs=2, progress=True, tensorboard=False),
        run_dir=tmp_path, name="shown")
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "shown epoch 2" in captured.err and "step" in captured.err
    fit(tiny_mlp(), make_data(), make_data(seed=1), TrainConfig(epochs=2, **QUIET), run_dir=tmp_path / "q")
    assert capsys.readouterr().err == ""


# ---------------------------------------------------------------------------------------------
# the FER recipe
# ---------------------------------------------------------------------------------------------


def test_fer_recipe_is_a_budgeted_onecycle_config_with_batch_augmented_uint8_data():
    config = fer_recipe(budget_s=120, seed=3, progress=False)
    assert (config.budget_s, config.schedule, config.seed, config.amp, config.channels_last) == \
        (120, "onecycle", 3, "auto", True)
    assert fer_recipe(budget_s=None, epochs=5).budget_s is None
    with pytest.raises(ConfigError, match="budget_s"):
        fer_recipe(budget_s=None, epochs=None)
    images = torch.randint(0, 256, (10, 1, 48, 48), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    faces = FaceSet(images, torch.tensor([0, 1, 2, -1, 1, 0, 2, 1, 0, 1]), ("a", "b", "c"), name="toy",
                    split="train", source="generated: test")
    data = fer_recipe_data(faces, batch_size=4)
    assert data.x.dtype == torch.uint8 and data.num_samples == 9 and data.augment is not None
    batch = next(data.batches(train=True))
    assert batch["x"].shape == (4, 3, 48, 48) and batch["x"].dtype == torch.float32
    assert fer_recipe_data(faces, train=False).augment is None
