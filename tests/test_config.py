"""Parameters cell checks: bad profile, wrong types, missing data root give clear errors."""

from __future__ import annotations

import pytest
import torch

from affectlab.config import (
    ConfigError,
    config_hash,
    pick,
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
