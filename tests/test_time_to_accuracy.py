"""benchmarks/time_to_accuracy.py (issue 13): the strict-majority subset and the no-data exit.

The benchmark itself trains for minutes and is not run here (no timed tests); these check the parts
that decide what it reports.
"""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "time_to_accuracy.py"


@pytest.fixture(scope="module")
def tta():
    spec = importlib.util.spec_from_file_location("time_to_accuracy", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_strict_majority_counts_unknown_and_not_a_face_votes(tta):
    votes = np.array([
        [6, 4, 0, 0, 0, 0, 0, 0, 0, 0],  # 6 of 10 for one emotion: kept
        [5, 5, 0, 0, 0, 0, 0, 0, 0, 0],  # exactly half: not kept
        [0, 0, 0, 0, 0, 0, 0, 4, 3, 3],  # contempt 4 of 10 (unknown/NF outvote it): not kept
        [0, 0, 0, 3, 0, 0, 0, 0, 0, 0],  # 3 of 3 votes: kept
        [0, 0, 0, 0, 0, 0, 0, 0, 6, 4],  # unknown holds the majority: not an emotion
    ])
    assert tta.strict_majority_mask(votes).tolist() == [True, False, False, True, False]


def test_strict_majority_rejects_wrong_shape(tta):
    with pytest.raises(ValueError, match=r"\(N, 10\)"):
        tta.strict_majority_mask(np.zeros((3, 8)))


def test_no_data_root_says_so_and_exits_2(tta, monkeypatch, capsys, tmp_path):
    monkeypatch.delenv("AFFECTLAB_DATA", raising=False)
    assert tta.main(["--out", str(tmp_path / "t.json")]) == 2
    assert "no data root" in capsys.readouterr().err
    assert not (tmp_path / "t.json").exists()


def test_plain_schedule_default_fits_the_budget(tta):
    # The plain script's one-cycle is laid out over what a fp32 loop fits into 8 minutes here
    # (3.5-3.8 epochs), not 10 epochs it never reaches.
    assert tta.parse_args([]).plain_epochs == 4
