"""Tests of the uci_emg builder: dummy data (exact counts and values), the real copy, bad input."""

from __future__ import annotations

import collections
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from data_builders import emg_common, registry, testing
from data_builders.uci_emg import uci_emg_dataset_builder as uci

HERE = Path(__file__).resolve().parent
DUMMY_DIR = HERE / "dummy_data"
SAMPLE_DIR = HERE / "sample"
SHARED_UCI = testing.SHARED_DATA / "uci_emg"
SPLITS = testing.SPLITS
# Per cycle of the dummy protocol: gestures of 1100 ms give 1 window, of 1400 ms give 2.
DUMMY_WINDOWS_PER_CYCLE = {0: 1, 1: 2, 2: 1, 3: 2, 4: 1, 5: 1}
DUMMY_CYCLES = {"train": 2 + 1 + 1, "validation": 1, "test": 1}


@pytest.fixture(scope="module", params=["default", "hz200"])
def dummy_build(request, tmp_path_factory):
  return testing.build_and_read("uci_emg", DUMMY_DIR,
                                tmp_path_factory.mktemp(f"tfds_{request.param}"),
                                config=request.param)


def test_dummy_split_sizes_and_class_counts(dummy_build):
  builder, records = dummy_build
  per_cycle = sum(DUMMY_WINDOWS_PER_CYCLE.values())
  for split in SPLITS:
    assert builder.info.splits[split].num_examples == DUMMY_CYCLES[split] * per_cycle
    labels = collections.Counter(int(r["label"]) for r in records[split])
    assert labels == {k: v * DUMMY_CYCLES[split] for k, v in DUMMY_WINDOWS_PER_CYCLE.items()}


def test_dummy_features_and_metadata(dummy_build):
  builder, records = dummy_build
  config = builder.builder_config
  assert dict(builder.info.metadata) == {"sample_rate_hz": config.sample_rate_hz,
                                         "num_channels": 8, "window": config.window,
                                         "stride": config.stride}
  assert builder.info.features["label"].names == list(uci.CLASS_NAMES)
  for record in records["train"]:
    assert record["emg"].shape == (8, config.window) and record["emg"].dtype == np.float32
    assert np.isfinite(record["emg"]).all()
  assert {(int(r["subject"]), int(r["session"])) for r in records["train"]} == {(1, 1), (1, 2),
                                                                              (2, 2)}
  assert {int(r["subject"]) for r in records["validation"]} == {18}
  assert {int(r["subject"]) for r in records["test"]} == {21}
  # Only subject 01 series 1 goes through the six gestures twice.
  twice = {(int(r["subject"]), int(r["session"])) for s in SPLITS for r in records[s]
           if r["repetition"] == 2}
  assert twice == {(1, 1)}


def test_dummy_band_pass_removes_offset(dummy_build):
  _, records = dummy_build
  emg = np.stack([r["emg"] for r in records["train"]])
  # Channel 8 is stored 40 Myo units above zero; 20-90 Hz band-pass leaves no offset.
  assert abs(emg[:, 7].mean()) < 1.0
  assert 2.0 < emg[:, 0].std() < 12.0


def _reference_recording(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Independent path: hold each row until the next time stamp, then filter with scipy."""
  table = np.array([line.split("\t") for line in path.read_text().splitlines()[1:]], float)
  time_ms = table[:, 0].astype(int)
  hold_ms = np.diff(time_ms, append=time_ms[-1] + 1)
  emg = np.repeat(table[:, 1:9], hold_ms, axis=0).T * 1e5
  classes = np.repeat(table[:, 9].astype(int), hold_ms)
  return testing.reference_filter(emg, 1000, (20, 90), 50), classes, time_ms


def test_dummy_window_values_match_reference(dummy_build):
  builder, records = dummy_build
  if builder.builder_config.name != "default":
    pytest.skip("the reference path is written for the 1 kHz grid")
  path = next((DUMMY_DIR / uci.UNPACKED_DIR / "01").glob("2_raw_data_*.txt"))
  emg, classes, _ = _reference_recording(path)
  fist_start = int(np.flatnonzero(classes == 2)[0])   # raw class 2 = fist = label 1, 1400 ms
  expected = [emg[:, fist_start + k:fist_start + k + 1000] for k in (0, 250)]
  got = [r["emg"] for r in records["train"]
         if (r["subject"], r["session"], r["label"]) == (1, 2, 1)]
  assert len(got) == 2
  got.sort(key=lambda w: min(np.abs(w - expected[0]).max(), 1e9))
  np.testing.assert_allclose(got[0], expected[0], atol=1e-3, rtol=1e-5)
  np.testing.assert_allclose(got[1], expected[1], atol=1e-3, rtol=1e-5)


def test_all_windows_cover_recordings_and_label_only_whole_gestures(tmp_path):
  builder, records = testing.build_and_read("uci_emg", DUMMY_DIR, tmp_path, config="hz200_all")
  none = len(uci.CLASS_NAMES)
  assert builder.info.features["label"].names == list(uci.CLASS_NAMES) + [uci.UNLABELED]
  _, labeled = testing.build_and_read("uci_emg", DUMMY_DIR, tmp_path / "hz200", config="hz200")
  for split in SPLITS:
    got = records[split]
    assert {int(r["label"]) for r in got} == set(range(6)) | {none}
    assert all(int(r["repetition"]) == 0 for r in got if int(r["label"]) == none)
    # The labeled windows of hz200 (stride 50) are among these (stride 20) where offsets meet.
    want = {r["emg"].tobytes(): int(r["label"]) for r in labeled[split]}
    have = {r["emg"].tobytes(): int(r["label"]) for r in got}
    common = want.keys() & have.keys()
    assert len(common) >= len(want) // 2
    assert all(have[k] == want[k] for k in common)
    # More windows than the gesture-only variant: the unmarked rows are in.
    assert len(got) > 2 * len(labeled[split])


def test_zip_and_unpacked_manual_dir_give_same_recordings(tmp_path):
  archive = tmp_path / uci.ZIP_NAMES[0]
  with zipfile.ZipFile(archive, "w") as out:
    for path in sorted(DUMMY_DIR.glob(f"{uci.UNPACKED_DIR}/*/*.txt")):
      out.write(path, path.relative_to(DUMMY_DIR).as_posix())
  from_zip = uci.find_recordings(tmp_path)
  from_dir = uci.find_recordings(DUMMY_DIR)
  assert [(r.subject, r.series) for r in from_zip] == [(1, 1), (1, 2), (2, 2), (18, 1), (21, 1)]
  assert [(r.subject, r.series) for r in from_dir] == [(r.subject, r.series) for r in from_zip]
  assert [r.read() for r in from_dir] == [r.read() for r in from_zip]


def test_bundled_sample_layout():
  recordings = uci.find_recordings(SAMPLE_DIR)
  assert sorted({r.subject for r in recordings}) == [1, 3, 4, 5, 6, 7, 17, 18, 20, 21]
  assert len(recordings) == 20
  assert (SAMPLE_DIR / uci.ZIP_NAMES[0]).stat().st_size <= 5_000_000


# ----------------------------------------------------------------------------- real data
@pytest.fixture(scope="module")
def real_build(tmp_path_factory):
  testing.need_shared(SHARED_UCI / uci.ZIP_NAMES[0])
  return testing.build_and_read("uci_emg", SHARED_UCI, tmp_path_factory.mktemp("tfds_real"))[1]


def _expected_windows_per_subject() -> collections.Counter:
  """Counts windows from the raw time stamps alone: a run lasts until the next run's first row."""
  counts = collections.Counter()
  for recording in uci.find_recordings(SHARED_UCI):
    table = np.loadtxt(recording.read().decode().splitlines()[1:], delimiter="\t",
                       usecols=(0, 9))
    time_ms, classes = table[:, 0], table[:, 1]
    starts = np.concatenate([[0], np.flatnonzero(np.diff(classes)) + 1])
    ends = np.append(time_ms[starts[1:]], time_ms[-1] + 1)
    for start, end in zip(starts, ends):
      length = int(end - time_ms[start])
      if classes[start] not in (0, 7) and length >= 1000:
        counts[recording.subject] += (length - 1000) // 250 + 1
  return counts


def test_real_counts_per_split_class_and_subject(real_build):
  assert testing.split_sizes(real_build) == {"train": 1157, "validation": 280, "test": 249}
  every = [r for s in SPLITS for r in real_build[s]]
  labels = collections.Counter(int(r["label"]) for r in every)
  assert labels == {0: 271, 1: 270, 2: 283, 3: 283, 4: 285, 5: 294}
  # Class balance: every gesture holds 16-18 % of the windows (1/6 = 16.7 %).
  shares = np.array([labels[k] for k in range(6)]) / len(every)
  assert shares.min() > 0.155 and shares.max() < 0.18
  subjects = collections.Counter(int(r["subject"]) for r in every)
  assert subjects == _expected_windows_per_subject()
  assert collections.Counter(int(r["repetition"]) for r in every) == {1: 853, 2: 833}


def test_real_values_finite_and_in_myo_units(real_build):
  for split in SPLITS:
    emg = np.stack([r["emg"] for r in real_build[split]])
    assert np.isfinite(emg).all()
    # Filtered int8 samples: spread of a few units, never beyond the int8 range by much.
    assert 1.0 < emg.std() < 40.0 and np.abs(emg).max() < 400.0


def test_real_splits_are_subject_disjoint(real_build):
  assert testing.assert_subject_disjoint(real_build) == {
      "train": {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 14, 15, 16}, "validation": {17, 18, 19},
      "test": {20, 21, 22}}


# ----------------------------------------------------------------------------- bad input
GOOD_ROW = "5\t1e-05\t0\t0\t0\t0\t0\t0\t-2e-05\t1"


@pytest.mark.parametrize("body, problem", [
    ("time\tch1\tclass\r\n" + GOOD_ROW, "header"),
    (uci.HEADER + "\r\n" + GOOD_ROW + "\r\n6\t1e-05\t0\r\n", "malformed row"),
    (uci.HEADER + "\r\n" + GOOD_ROW + "\r\n" + GOOD_ROW.replace("5\t1e-05", "6\tnan"),
     "non-finite"),
    (uci.HEADER + "\r\n" + GOOD_ROW + "\r\n" + GOOD_ROW, "time does not increase"),
    (uci.HEADER + "\r\n" + GOOD_ROW + "\r\n" + GOOD_ROW.replace("5\t", "6\t")[:-1] + "9",
     "class 9"),
])
def test_parse_rejects_bad_files(body, problem):
  with pytest.raises(emg_common.CorpusError, match=problem) as info:
    uci.parse_recording(body.encode(), "01/1_raw_data_x.txt")
  assert "01/1_raw_data_x.txt" in str(info.value)


def test_missing_or_empty_manual_dir(tmp_path):
  with pytest.raises(emg_common.CorpusError, match="does not exist"):
    uci.find_recordings(tmp_path / "nowhere")
  with pytest.raises(emg_common.CorpusError, match=f"manual_dir {tmp_path} holds no UCI"):
    uci.find_recordings(tmp_path)


def test_failed_build_leaves_nothing_readable(tmp_path):
  manual = tmp_path / "manual"
  shutil.copytree(DUMMY_DIR / uci.UNPACKED_DIR, manual / uci.UNPACKED_DIR)
  bad = next((manual / uci.UNPACKED_DIR / "21").glob("*.txt"))
  bad.write_bytes(bad.read_bytes()[:-2000] + b"\r\n123\t1e-05\r\n")   # truncated, ragged
  testing.assert_build_fails("uci_emg", manual, tmp_path / "tfds", "malformed row", bad.name)
  with pytest.raises(registry.DatasetNotBuiltError, match="python -m data_builders.build uci_emg"):
    registry.load_split("uci_emg", "train", data_dir=tmp_path / "tfds")


def test_paper_split_selects_subjects_of_a_complete_36_subject_copy(tmp_path):
  """A complete copy (subjects 01-36): the named "paper" split gives 1-24 / 25-30 / 31-36."""
  from configs import finetune
  from tinymyo_jax import input_pipeline
  recording = next((DUMMY_DIR / uci.UNPACKED_DIR / "18").glob("1_raw_data_*.txt"))
  for subject in range(1, 37):
    folder = tmp_path / "manual" / uci.UNPACKED_DIR / f"{subject:02d}"
    folder.mkdir(parents=True)
    shutil.copy(recording, folder / recording.name)
  data_dir = tmp_path / "tfds"
  _, records = testing.build_and_read("uci_emg", tmp_path / "manual", data_dir, config="hz200")
  # The builder's own splits are the mapping documented for the 20-subject copy.
  assert testing.ids_by_split(records) == {"train": set(range(1, 17)),
                                           "validation": {17, 18, 19},
                                           "test": set(range(20, 37))}
  config = finetune.get_config("uci_200hz,paper")
  source = input_pipeline.Source(*config.data.sources[0])
  subjects = [{int(r["subject"]) for r in input_pipeline.load_source(source, split, data_dir)}
              for split in (config.data.train_split, config.data.eval_split,
                            config.data.test_split)]
  assert subjects == [set(range(1, 25)), set(range(25, 31)), set(range(31, 37))]
