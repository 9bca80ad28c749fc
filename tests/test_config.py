"""Parameters cell checks: bad profile, wrong types, missing data root give clear errors."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from affectlab.config import (
    ConfigError,
    FieldCheck,
    config_hash,
    is_int,
    pick,
    profile_config,
    resolve_data_root,
    resolve_device,
    resolve_run,
)


def test_unknown_profile_names_parameter_and_choices():
    with pytest.raises(ConfigError, match=r"PROFILE='fast' is unknown; choose one of \('smoke', 'quick', 'paper'\)"):
        resolve_run("fast")


def test_profile_of_wrong_type():
    with pytest.raises(ConfigError, match="PROFILE must be a string"):
        resolve_run(3)


@pytest.mark.parametrize("seed", ["0", 1.5, True, -1])
def test_bad_seed(seed):
    with pytest.raises(ConfigError, match="SEED"):
        resolve_run("smoke", seed=seed)


def test_missing_data_root_names_path(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(ConfigError, match=r"DATA_ROOT=.*nowhere.* is not an existing directory"):
        resolve_run("smoke", data_root=str(missing))


def test_missing_data_root_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("AFFECTLAB_DATA", str(tmp_path / "gone"))
    with pytest.raises(ConfigError, match="environment variable AFFECTLAB_DATA"):
        resolve_data_root(None)


def test_data_root_resolution_order(tmp_path, monkeypatch):
    monkeypatch.delenv("AFFECTLAB_DATA", raising=False)
    assert resolve_data_root(None) is None
    monkeypatch.setenv("AFFECTLAB_DATA", str(tmp_path))
    assert resolve_data_root("") == tmp_path.resolve()
    other = tmp_path / "other"
    other.mkdir()
    assert resolve_data_root(str(other)) == other.resolve()


def test_device_checks():
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ConfigError, match="DEVICE='gpu0' is not a torch device"):
        resolve_device("gpu0")
    with pytest.raises(ConfigError, match="DEVICE must be a string"):
        resolve_device(0)
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="asks for CUDA"):
            resolve_device("cuda")


def test_config_hash_is_order_independent_and_sensitive():
    a = {"lr": 1e-3, "epochs": 2, "nested": {"b": 1, "a": 2}}
    b = {"nested": {"a": 2, "b": 1}, "epochs": 2, "lr": 1e-3}
    assert config_hash(a) == config_hash(b)
    assert config_hash(a) != config_hash({**a, "epochs": 3})


def test_pick_by_profile():
    assert pick("quick", smoke=1, quick=5, paper=60) == 5
    with pytest.raises(ConfigError, match="no value given for profile 'paper'"):
        pick("paper", smoke=1, quick=5)


@dataclasses.dataclass(frozen=True)
class _Sizes:
    profile: str
    epochs: int = 1
    test_size: int | None = None
    lr: float = 1e-3
    frozen: bool = False
    optimizer: str = "adamw"


def test_field_check_names_the_owner_field_expectation_and_value():
    check = FieldCheck(_Sizes("quick", epochs=0, test_size=None, lr=-1.0, frozen=1, optimizer="sgd"), "ChapterConfig")
    with pytest.raises(ConfigError, match=r"^ChapterConfig.epochs must be an int >= 1; got 0$"):
        check.ints("epochs")
    check.ints("test_size", optional=True)  # None allowed
    check.ints("epochs", minimum=0)
    with pytest.raises(ConfigError, match=r"ChapterConfig.lr must be a number > 0; got -1.0"):
        check.numbers("lr")
    with pytest.raises(ConfigError, match=r"ChapterConfig.frozen must be a bool; got 1"):
        check.bools("frozen")
    with pytest.raises(ConfigError, match=r"ChapterConfig.optimizer must be one of \('adamw', 'sam'\); got 'sgd'"):
        check.one_of("optimizer", ("adamw", "sam"))
    with pytest.raises(ConfigError, match="_Sizes.test_size must be set"):
        FieldCheck(_Sizes("quick")).require(False, "test_size", "set")
    # bools are not ints, NumPy integers are
    assert not is_int(True) and is_int(np.int64(3)) and not is_int(3.0)
    with pytest.raises(ConfigError, match="epochs must be an int"):
        FieldCheck(_Sizes("quick", epochs=True)).ints("epochs")


def test_profile_config_merges_overrides_and_names_unknown_fields():
    table = {"smoke": {"epochs": 1}, "quick": {"epochs": 4, "lr": 5e-4}, "paper": {"epochs": 200}}
    assert profile_config(_Sizes, "quick", table, {"test_size": 10}) == _Sizes("quick", epochs=4, test_size=10, lr=5e-4)
    with pytest.raises(ConfigError, match=r"unknown field\(s\) \['epoch'\]"):
        profile_config(_Sizes, "quick", table, {"epoch": 3})
    with pytest.raises(ConfigError, match="PROFILE='fast' is unknown"):
        profile_config(_Sizes, "fast", table, {})
