"""EEG loaders: DEAP/MAHNOB features, DREAMER, EAV (and its preprocessing), EEGLAB sample, raw files."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import scipy.io
from scipy.signal import butter, resample_poly, sosfilt

from affectlab.data import eeg
from affectlab.data.manifest import DatasetValidationError, read_manifest
from affectlab.data.taxonomy import CIRCUMPLEX_VA
from fixtures_eeg import (
    dreamer_manifest,
    eav_manifest,
    eeglab_manifest,
    feature_manifest,
    write_dreamer_mat,
    write_eav_subject,
    write_eeglab_set,
    write_feature_folder,
)

# --- DEAP / MAHNOB-HCI features ----------------------------------------------------------------


def test_deap_features_fixture_layout_and_labels(tmp_path):
    written = write_feature_folder(tmp_path, n_rows=12)
    data = eeg.load_deap_features(tmp_path, "all", feature_manifest("deap", 12))
    assert data.data.shape == (12, 5, 32) and data.data.dtype == np.float32
    assert data.kind == "band_power" and data.bands == eeg.FEATURE_BANDS
    # column j (0-based) = band j // 32, electrode j % 32: beta (band 3) of electrode 5 is column 101
    np.testing.assert_allclose(data.data[:, 3, 5], written["features"][:, 3 * 32 + 5], rtol=1e-6)
    np.testing.assert_allclose(data.data[:, 0, 0], written["features"][:, 0], rtol=1e-6)
    codes = written["va_codes"]
    np.testing.assert_array_equal(data.labels["valence_binary"], (codes[:, 0] == 1).astype(int))
    np.testing.assert_array_equal(data.labels["arousal_binary"], (codes[:, 1] == 1).astype(int))
    np.testing.assert_array_equal(data.subject, written["subject"])
    np.testing.assert_array_equal(data.labels["video"], written["video"])
    assert any("Biosemi" in a for a in data.assumptions)
    assert data.ch_names == eeg.DEAP_CHANNELS


def test_mahnob_features_fixture_categories_and_va(tmp_path):
    written = write_feature_folder(tmp_path, n_rows=18, categories=True)
    data = eeg.load_mahnob_features(tmp_path, "all", feature_manifest("mahnob_hci", 18))
    names = [data.meta["class_names"][i] for i in data.labels["emotion"]]
    assert names[:9] == ["neutral", "anger", "disgust", "fear", "joy", "sadness", "surprise", "amusement", "anxiety"]
    np.testing.assert_array_equal(data.labels["emotion_code"], written["categories"])
    # joy and amusement -> happiness circumplex point; anxiety -> fear
    assert data.labels["valence"][4] == pytest.approx(CIRCUMPLEX_VA["happiness"][0])
    assert data.labels["arousal"][8] == pytest.approx(CIRCUMPLEX_VA["fear"][1])
    assert data.labels["valence"].dtype == np.float32


def test_feature_nan_names_file_and_line(tmp_path):
    write_feature_folder(tmp_path, n_rows=6)
    path = tmp_path / "EEG_feature.txt"
    lines = path.read_text().splitlines()
    cells = lines[3].split("\t")
    cells[7] = "nan"
    lines[3] = "\t".join(cells)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetValidationError, match=r"EEG_feature\.txt: line 4 has NaN"):
        eeg.load_deap_features(tmp_path, "all", feature_manifest("deap", 6))


def test_feature_row_count_mismatch_names_both_files(tmp_path):
    write_feature_folder(tmp_path, n_rows=6)
    path = tmp_path / "valence_arousal_label.txt"
    path.write_text("\n".join(path.read_text().splitlines()[:5]) + "\n")
    with pytest.raises(DatasetValidationError, match=r"EEG_feature\.txt has 6 rows but .*valence_arousal_label\.txt has 5"):
        eeg.load_deap_features(tmp_path, "all", feature_manifest("deap", 6))


def test_feature_wrong_column_count_and_expected_rows(tmp_path):
    write_feature_folder(tmp_path, n_rows=6)
    with pytest.raises(DatasetValidationError, match=r"EEG_feature\.txt: 6 rows, the manifest expects 1216"):
        eeg.load_deap_features(tmp_path, "all", read_manifest("deap"))
    path = tmp_path / "EEG_feature.txt"
    lines = path.read_text().splitlines()
    lines[1] = "\t".join(lines[1].split("\t")[:100])
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetValidationError, match=r"EEG_feature\.txt: line 2 has 100 columns, expected 160"):
        eeg.load_deap_features(tmp_path, "all", feature_manifest("deap", 6))


def test_feature_empty_or_binary_file_names_file(tmp_path):
    write_feature_folder(tmp_path, n_rows=3)
    (tmp_path / "subject_video.txt").write_text("\n\n")
    with pytest.raises(DatasetValidationError, match=r"subject_video\.txt: file is empty"):
        eeg.load_deap_features(tmp_path, "all", feature_manifest("deap", 3))
    (tmp_path / "subject_video.txt").write_bytes(b"\xff\xfe\x00\x81" * 10)
    with pytest.raises(DatasetValidationError, match=r"subject_video\.txt: not a UTF-8 text table"):
        eeg.load_deap_features(tmp_path, "all", feature_manifest("deap", 3))


def test_feature_bad_label_codes_name_file(tmp_path):
    write_feature_folder(tmp_path, n_rows=9, categories=True)
    (tmp_path / "valence_arousal_label.txt").write_text("1\t2\n" * 8 + "3\t1\n")
    with pytest.raises(DatasetValidationError, match=r"valence_arousal_label\.txt: valence code 3 on row 9"):
        eeg.load_mahnob_features(tmp_path, "all", feature_manifest("mahnob_hci", 9))
    (tmp_path / "valence_arousal_label.txt").write_text("1\t2\n" * 9)
    (tmp_path / "EEG_emotion_category.txt").write_text("0\n" * 8 + "7\n")
    with pytest.raises(DatasetValidationError, match=r"EEG_emotion_category\.txt: category code 7 on row 9"):
        eeg.load_mahnob_features(tmp_path, "all", feature_manifest("mahnob_hci", 9))


def test_unknown_split_is_an_error(tmp_path):
    write_feature_folder(tmp_path, n_rows=3)
    with pytest.raises(ValueError, match="split 'train' unknown"):
        eeg.load_deap_features(tmp_path, "train", feature_manifest("deap", 3))


def test_real_deap_and_mahnob(shared_root):
    deap = eeg.load_deap_features(shared_root / "deap_mahnob_features/DEAP", "all", read_manifest("deap"))
    assert deap.data.shape == (1216, 5, 32)
    assert len(np.unique(deap.subject)) == 32
    assert 1.0 < deap.data.min() and deap.data.max() < 12.0
    assert set(np.unique(deap.labels["valence_binary"])) == {0, 1}
    mahnob = eeg.load_mahnob_features(shared_root / "deap_mahnob_features/MAHNOB-HCI", "all", read_manifest("mahnob_hci"))
    assert mahnob.data.shape == (533, 5, 32)
    assert len(np.unique(mahnob.subject)) == 27
    assert np.bincount(mahnob.labels["emotion"], minlength=9).tolist() == [111, 15, 55, 39, 85, 67, 25, 101, 35]


def test_registry_loads_real_deap(shared_root):
    from affectlab.data.registry import load

    data = load("deap", root=shared_root, cache=False)
    assert data.data.shape == (1216, 5, 32) and data.name == "deap"


# --- raw files (MNE) -----------------------------------------------------------------------------


def test_read_raw_eeglab_fixture_microvolts_and_eog(tmp_path):
    set_path, data_uv = write_eeglab_set(tmp_path)
    raw = eeg.read_raw(set_path)
    assert raw.data.shape == (1, 5, 256) and raw.sfreq == 128.0 and raw.kind == "signal"
    np.testing.assert_allclose(raw.data[0], data_uv, atol=1e-3)
    assert raw.meta["unit"] == "uV"
    assert raw.meta["ch_types"][-1] == "eog" and raw.meta["ch_types"][0] == "eeg"


def test_read_raw_missing_fdt_names_file(tmp_path):
    set_path, _ = write_eeglab_set(tmp_path, write_fdt=False)
    with pytest.raises(DatasetValidationError, match=r"eeglab_data\.set: its data file eeglab_data\.fdt is missing"):
        eeg.read_raw(set_path)


def test_read_raw_bad_inputs_name_file(tmp_path):
    with pytest.raises(DatasetValidationError, match=r"nothing\.edf: file missing"):
        eeg.read_raw(tmp_path / "nothing.edf")
    (tmp_path / "rec.vhdr").write_text("x")
    with pytest.raises(DatasetValidationError, match=r"rec\.vhdr: unsupported file type"):
        eeg.read_raw(tmp_path / "rec.vhdr")
    (tmp_path / "broken.edf").write_bytes(b"0" * 300)
    with pytest.raises(DatasetValidationError, match=r"broken\.edf: MNE could not read it"):
        eeg.read_raw(tmp_path / "broken.edf")


def test_read_raw_real_edf_bdf(shared_root):
    edf = eeg.read_raw(shared_root / "eeglab_sample/test_data/test.edf")
    assert edf.data.shape[:2] == (1, 16) and edf.sfreq == 256.0
    assert 1.0 < float(edf.data.std()) < 1000.0  # microvolts, not volts
    bdf = eeg.read_raw(shared_root / "eeglab_sample/test_data/test.bdf")
    assert "stim" in bdf.meta["ch_types"] and bdf.sfreq == 256.0


def test_eeglab_sample_fixture_checks(tmp_path):
    names = ("Fz", "Cz", "Pz", "Oz", "EOG1")
    write_eeglab_set(tmp_path, names, n_samples=256)
    data = eeg.load_eeglab_sample(tmp_path, "all", eeglab_manifest(names, 256))
    assert data.data.shape == (1, 5, 256) and data.name == "eeglab_sample"
    with pytest.raises(DatasetValidationError, match=r"eeglab_data\.set: 5 channels, the manifest expects 6"):
        eeg.load_eeglab_sample(tmp_path, "all", eeglab_manifest(names + ("O1",), 256))
    with pytest.raises(DatasetValidationError, match=r"eeglab_data\.set: sampling rate 128\.0 Hz, the manifest expects 256"):
        eeg.load_eeglab_sample(tmp_path, "all", eeglab_manifest(names, 256, sfreq=256.0))
    with pytest.raises(DatasetValidationError, match=r"eeglab_data\.set: 256 samples, the manifest expects 300"):
        eeg.load_eeglab_sample(tmp_path, "all", eeglab_manifest(names, 300))


def test_real_eeglab_sample(shared_root, tmp_path):
    data = eeg.load_eeglab_sample(shared_root / "eeglab_sample", "all", read_manifest("eeglab_sample"))
    assert data.data.shape == (1, 32, 30504) and data.sfreq == 128.0
    assert data.ch_names[:3] == ("FPz", "EOG1", "F3")
    assert data.meta["ch_types"].count("eog") == 2
    assert data.meta["ch_pos"].shape == (32, 3) and np.isfinite(data.meta["ch_pos"]).all()
    assert 5.0 < float(data.data.std()) < 100.0
    # the .fdt removed from a copy -> the error names the missing file
    for name in ("eeglab_data.set", "eeglab_chan32.locs"):
        shutil.copy(shared_root / "eeglab_sample" / name, tmp_path / name)
    with pytest.raises(DatasetValidationError, match=r"eeglab_data\.fdt is missing"):
        eeg.load_eeglab_sample(tmp_path, "all", read_manifest("eeglab_sample"))


# --- DREAMER ---------------------------------------------------------------------------------------


def test_dreamer_fixture_crop_scaling_and_labels(tmp_path):
    written = write_dreamer_mat(tmp_path / "DREAMER.mat", n_subjects=2, clip_seconds=(6.5, 7.0, 8.0))
    data = eeg.load_dreamer(tmp_path, "all", dreamer_manifest(2, 3, crop_seconds=6.0))
    assert data.data.shape == (6, 14, 6 * 128) and data.sfreq == 128.0
    assert data.ch_names == eeg.EMOTIV_CHANNELS
    np.testing.assert_array_equal(data.subject, [1, 1, 1, 2, 2, 2])
    np.testing.assert_array_equal(data.labels["video"], [1, 2, 3, 1, 2, 3])
    # trial 2 of subject 1 is the LAST 6 s of its clip, per-channel mean removed
    last = written["stimuli"][1][-6 * 128 :].T
    np.testing.assert_allclose(data.data[1], last - last.mean(axis=1, keepdims=True), atol=1e-3)
    valence = written["valence"].ravel()
    np.testing.assert_allclose(data.labels["valence"], (valence - 3) / 2)
    np.testing.assert_array_equal(data.labels["valence_binary"], (valence > 3).astype(int))
    assert data.labels["arousal"].min() >= -1 and data.labels["arousal"].max() <= 1
    assert any("LAST 6 s" in a for a in data.assumptions)
    assert eeg.load_dreamer(tmp_path, "all", dreamer_manifest(2, 3, crop_seconds=6.0)).meta["crop_samples"] == 768
    with_baseline = dreamer_manifest(2, 3, crop_seconds=6.0)
    with_baseline["params"]["keep_baseline"] = True
    assert eeg.load_dreamer(tmp_path, "all", with_baseline).meta["baseline"].shape == (6, 14, 768)


def test_dreamer_bad_inputs_name_file(tmp_path):
    write_dreamer_mat(tmp_path / "DREAMER.mat", n_subjects=1, clip_seconds=(5.0,))
    with pytest.raises(DatasetValidationError, match=r"DREAMER\.mat: Data\{1\}\.EEG\.stimuli\{1\}: 640 samples, shorter"):
        eeg.load_dreamer(tmp_path, "all", dreamer_manifest(1, 1))
    write_dreamer_mat(tmp_path / "DREAMER.mat", n_subjects=1, clip_seconds=(6.5,), ch_names=eeg.EMOTIV_CHANNELS[:12])
    with pytest.raises(DatasetValidationError, match=r"DREAMER\.mat: EEG_Electrodes"):
        eeg.load_dreamer(tmp_path, "all", dreamer_manifest(1, 1))
    write_dreamer_mat(tmp_path / "DREAMER.mat", n_subjects=1, clip_seconds=(6.5,), sfreq=256.0)
    with pytest.raises(DatasetValidationError, match=r"DREAMER\.mat: EEG_SamplingRate is 256\.0 Hz, expected 128\.0 Hz"):
        eeg.load_dreamer(tmp_path, "all", dreamer_manifest(1, 1))
    write_dreamer_mat(tmp_path / "DREAMER.mat", n_subjects=2, clip_seconds=(6.5,))
    with pytest.raises(DatasetValidationError, match=r"DREAMER\.mat: 2 subjects, the manifest expects 23"):
        eeg.load_dreamer(tmp_path, "all", read_manifest("dreamer"))
    mat = scipy.io.loadmat(tmp_path / "DREAMER.mat")
    mat["DREAMER"][0, 0]["Data"][0, 1][0, 0]["EEG"][0, 0]["stimuli"][0, 0][100, 3] = np.nan
    scipy.io.savemat(tmp_path / "DREAMER.mat", {"DREAMER": mat["DREAMER"]})
    with pytest.raises(DatasetValidationError, match=r"DREAMER\.mat: Data\{2\}\.EEG\.stimuli\{1\}: NaN"):
        eeg.load_dreamer(tmp_path, "all", dreamer_manifest(2, 1))
    (tmp_path / "DREAMER.mat").unlink()
    with pytest.raises(DatasetValidationError, match=r"DREAMER\.mat: file missing"):
        eeg.load_dreamer(tmp_path, "all", dreamer_manifest(2, 1))


# --- EAV -----------------------------------------------------------------------------------------


def test_preprocess_eav_matches_scipy_directly():
    rng = np.random.default_rng(0)
    t = np.arange(4000) / 500.0
    x = np.stack([np.sin(2 * np.pi * 10 * t) + 0.3 * rng.normal(size=t.size), np.sin(2 * np.pi * 48 * t)])
    ours = eeg.preprocess_eav(x, 500, 100)
    sos = butter(5, [0.5, 45.0], btype="bandpass", fs=100.0, output="sos")
    expected = sosfilt(sos, resample_poly(x, 1, 5, axis=-1), axis=-1)
    assert ours.shape == (2, 800) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, expected, atol=1e-5)
    # trials are processed as one continuous recording (the public loader's reshape)
    trials = x.reshape(2, 2, 2000).transpose(1, 0, 2)  # (2 trials, 2 channels, 2000)
    joined = eeg.preprocess_eav(trials, 500, 100)
    np.testing.assert_allclose(np.concatenate(list(joined), axis=-1), expected, atol=1e-5)
    # causal: the output before a step does not change when the future changes
    y = x.copy()
    y[:, 3000:] += 50
    np.testing.assert_allclose(eeg.preprocess_eav(y, 500, 100)[:, :590], ours[:, :590], atol=1e-5)


def test_preprocess_eav_bad_parameters():
    with pytest.raises(ValueError, match="band"):
        eeg.preprocess_eav(np.zeros((2, 1000)), 500, 100, band=(0.5, 60.0))
    with pytest.raises(ValueError, match="NaN"):
        eeg.preprocess_eav(np.full((2, 1000), np.nan), 500, 100)


def test_segment_trials_order():
    x = np.arange(2 * 3 * 20).reshape(2, 3, 20).astype(float)
    seg = eeg.segment_trials(x, sfreq=2.0, seconds=5.0)  # 10 samples per segment
    assert seg.shape == (4, 3, 10)
    np.testing.assert_array_equal(seg[1], x[0, :, 10:20])
    np.testing.assert_array_equal(seg[2], x[1, :, 0:10])
    with pytest.raises(ValueError, match="shorter than one"):
        eeg.segment_trials(x, sfreq=1.0, seconds=30.0)


def test_load_eav_fixture_layout_labels_and_splits(tmp_path):
    _, _, cols = write_eav_subject(tmp_path, subject=1, n_trials=10)
    write_eav_subject(tmp_path, subject=2, n_trials=4)
    manifest = eav_manifest(10)
    del manifest["params"]["trials_per_subject"]
    both = eeg.load_eav(tmp_path, "all", manifest)
    assert both.data.shape == ((10 + 4) * 4, 30, 500) and both.sfreq == 100.0
    assert both.ch_names == eeg.EAV_CHANNELS
    first_trials = both.labels["trial"][both.subject == 1]
    np.testing.assert_array_equal(first_trials[:8], [0, 0, 0, 0, 1, 1, 1, 1])
    # column c -> emotion c // 2, task speaking (1) for even c, listening (0) for odd c
    emotion = both.labels["emotion"][::4][:10]
    task = both.labels["task"][::4][:10]
    np.testing.assert_array_equal(emotion, cols // 2)
    np.testing.assert_array_equal(task, (cols % 2 == 0).astype(int))
    assert both.labels["valence"][both.labels["emotion"] == 4][0] == pytest.approx(CIRCUMPLEX_VA["calmness"][0])
    speaking = eeg.load_eav(tmp_path, "speaking", manifest)
    assert len(speaking) == (5 + 2) * 4 and (speaking.labels["task"] == 1).all()
    only_two = eeg.load_eav(tmp_path, "listening", {**manifest, "params": {**manifest["params"], "subjects": [2]}})
    assert set(only_two.subject) == {2} and len(only_two) == 2 * 4
    # segments equal preprocessing + segmenting done by hand
    seg1 = scipy.io.loadmat(tmp_path / "subject01/EEG/subject01_eeg.mat")["seg1"]
    by_hand = eeg.segment_trials(eeg.preprocess_eav(seg1.transpose(2, 1, 0)), 100.0, 5.0)
    np.testing.assert_allclose(both.data[:40], by_hand, atol=1e-3)


def test_load_eav_bad_inputs_name_file(tmp_path):
    eeg_path, label_path, _ = write_eav_subject(tmp_path, subject=1, n_trials=4)
    manifest = eav_manifest(4)
    seg = scipy.io.loadmat(eeg_path)["seg1"]
    seg[10, 2, 3] = np.nan
    scipy.io.savemat(eeg_path, {"seg1": seg})
    with pytest.raises(DatasetValidationError, match=r"subject01_eeg\.mat: NaN/inf at sample 10, channel 2, trial 3"):
        eeg.load_eav(tmp_path, "all", manifest)
    write_eav_subject(tmp_path, subject=1, n_trials=4, n_channels=28)
    with pytest.raises(DatasetValidationError, match=r"subject01_eeg\.mat: 28 channels on axis 1"):
        eeg.load_eav(tmp_path, "all", manifest)
    write_eav_subject(tmp_path, subject=1, n_trials=4, sfreq=250.0)
    with pytest.raises(DatasetValidationError, match=r"subject01_eeg\.mat: 5000 samples per trial, expected 10000"):
        eeg.load_eav(tmp_path, "all", manifest)
    write_eav_subject(tmp_path, subject=1, n_trials=4)
    label = scipy.io.loadmat(label_path)["label"]
    label[:, 2] = 0
    scipy.io.savemat(label_path, {"label": label})
    with pytest.raises(DatasetValidationError, match=r"subject01_eeg_label\.mat: trial 2 is not one-hot"):
        eeg.load_eav(tmp_path, "all", manifest)
    with pytest.raises(DatasetValidationError, match="no subject folders"):
        eeg.load_eav(tmp_path / "empty", "all", manifest)
