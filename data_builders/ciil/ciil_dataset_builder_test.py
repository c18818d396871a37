"""Tests of the ciil builder: dummy data (exact counts and values), the real archive, bad input."""

from __future__ import annotations

import collections
import logging
import re
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest

from data_builders import build as build_lib
from data_builders import emg_common, myo_common, registry, testing
from data_builders.ciil import ciil_dataset_builder as ciil

HERE = Path(__file__).resolve().parent
DUMMY_DIR = HERE / "dummy_data"
DUMMY_ROOT = DUMMY_DIR / ciil.ROOT
SHARED_CIIL = testing.SHARED_DATA / "ciil"
REAL_ARCHIVE = SHARED_CIIL / ciil.ARCHIVE_NAMES[0]
CONFIGS = ("electrode_shift", "minimal_training", "all")
ALL_SPLITS = ("train", "validation")
PATH_RE = re.compile(r"(ElectrodeShift|MinimalTrainingData)/subject(\d+)/(?:test/)?"
                     r"(training|train|trial_(\d+))/R_(\d+)_C_(\d+)\.csv")
# The `all` group of each dummy person (literal: the design of make_dummy_data.py).
DUMMY_ALL_SPLIT = {9: "validation", 13: "train", 100: "train", 110: "validation"}


def _splits(config: str) -> tuple[str, ...]:
  return ALL_SPLITS if config == "all" else testing.SPLITS


def _build(config: str, manual_dir: Path, data_dir: Path):
  builder = build_lib.build("ciil", manual_dir=manual_dir, data_dir=data_dir, config=config)
  return builder, testing.read_splits("ciil", data_dir, config, splits=_splits(config))


@pytest.fixture(scope="module")
def dummy_builds(tmp_path_factory):
  """{config: (builder, records)} built once from the dummy folder."""
  return {config: _build(config, DUMMY_DIR, tmp_path_factory.mktemp(f"tfds_{config}"))
          for config in CONFIGS}


# ----------------------------------------------------------------------------- reference
def _dummy_files(root: Path = DUMMY_ROOT) -> list[dict]:
  """Every CSV below `root` with its ids, parsed from the path alone, and its raw samples."""
  files = []
  for path in sorted(root.rglob("*.csv")):
    group, folder, _, trial, rep, cls = PATH_RE.fullmatch(
        path.relative_to(root).as_posix()).groups()
    files.append({"path": path, "group": group,
                  "subject": int(folder) + (100 if group == "MinimalTrainingData" else 0),
                  "session": 0 if trial is None else int(trial) + 1, "rep": int(rep),
                  "label": int(cls), "raw": np.loadtxt(path, delimiter=",", ndmin=2)})
  return files


def _reference_split(file: dict, files: list[dict], config: str) -> str | None:
  """The split of one file under each protocol, written from the README, not the builder."""
  if config == "all":
    return DUMMY_ALL_SPLIT[file["subject"]]
  if config == "electrode_shift":
    if file["group"] != "ElectrodeShift" or file["session"] == 1:
      return None
    if file["session"] > 1:
      return "test"
    last = max(f["rep"] for f in files if f["group"] == "ElectrodeShift" and f["session"] == 0
               and (f["subject"], f["label"]) == (file["subject"], file["label"]))
    return "validation" if file["rep"] == last else "train"
  if file["group"] != "MinimalTrainingData":
    return None
  return {0: "train", 1: "validation"}.get(file["session"], "test")


def _reference_windows(file: dict, stride: int) -> list[np.ndarray]:
  """Independent path: scipy's zero-phase filters on the raw file, then windows."""
  emg = testing.reference_filter(file["raw"].T, 200.0, (20.0, 90.0), 50.0)
  return [emg[:, s:s + 200] for s in range(0, emg.shape[1] - 200 + 1, stride)]


def _ids(record: dict) -> tuple[int, int, int, int]:
  return (int(record["subject"]), int(record["session"]), int(record["repetition"]),
          int(record["label"]))


# ----------------------------------------------------------------------------- dummy data
EXPECTED_SIZES = {
    "electrode_shift": {"train": 16, "validation": 12, "test": 17},
    "minimal_training": {"train": 7, "validation": 9, "test": 23},
    "all": {"train": 28, "validation": 24},
}
EXPECTED_CLASSES = {
    "electrode_shift": {"train": {0: 5, 1: 2, 2: 2, 3: 4, 4: 3},
                        "validation": {0: 4, 1: 1, 3: 5, 4: 2},
                        "test": {0: 5, 1: 4, 2: 2, 3: 2, 4: 4}},
    "minimal_training": {"train": {0: 2, 1: 1, 2: 2, 3: 1, 4: 1},
                         "validation": {1: 4, 3: 2, 4: 3},
                         "test": {0: 4, 1: 6, 2: 5, 3: 4, 4: 4}},
    "all": {"train": {0: 8, 1: 6, 2: 3, 3: 6, 4: 5},
            "validation": {0: 5, 1: 6, 2: 4, 3: 4, 4: 5}},
}
EXPECTED_SUBJECTS = {
    "electrode_shift": {"train": {9: 11, 13: 5}, "validation": {9: 7, 13: 5},
                        "test": {9: 9, 13: 8}},
    "minimal_training": {"train": {100: 5, 110: 2}, "validation": {100: 7, 110: 2},
                         "test": {100: 11, 110: 12}},
    "all": {"train": {13: 13, 100: 15}, "validation": {9: 15, 110: 9}},
}


@pytest.mark.parametrize("config", CONFIGS)
def test_dummy_exact_counts_per_split_class_and_subject(dummy_builds, config):
  builder, records = dummy_builds[config]
  assert testing.split_sizes(records) == EXPECTED_SIZES[config]
  assert {s: builder.info.splits[s].num_examples for s in records} == EXPECTED_SIZES[config]
  for split, items in records.items():
    assert collections.Counter(int(r["label"]) for r in items) == EXPECTED_CLASSES[config][split]
    assert (collections.Counter(int(r["subject"]) for r in items)
            == EXPECTED_SUBJECTS[config][split])


@pytest.mark.parametrize("config", CONFIGS)
def test_dummy_windows_per_file_match_reference(dummy_builds, config):
  """Every file's windows (ids and values) equal the reference path's, each exactly once."""
  _, records = dummy_builds[config]
  stride = 100 if config == "all" else 50
  files = _dummy_files()
  expected: dict[tuple[str, tuple], list[np.ndarray]] = {}
  for file in files:
    split = _reference_split(file, files, config)
    windows = _reference_windows(file, stride)
    if split is not None and windows:
      expected[split, (file["subject"], file["session"], file["rep"], file["label"])] = windows
  got = collections.defaultdict(list)
  for split, items in records.items():
    for record in items:
      got[split, _ids(record)].append(record["emg"])
  assert got.keys() == expected.keys()
  for key, windows in expected.items():
    assert len(got[key]) == len(windows), key
    unmatched = list(range(len(windows)))
    for window in got[key]:
      errors = [np.abs(window - windows[i]).max() for i in unmatched]
      best = int(np.argmin(errors))
      assert errors[best] < 1e-3, (key, errors[best])
      unmatched.pop(best)


@pytest.mark.parametrize("config", CONFIGS)
def test_dummy_features_and_metadata(dummy_builds, config):
  builder, records = dummy_builds[config]
  stride = 100 if config == "all" else 50
  assert dict(builder.info.metadata) == {"sample_rate_hz": 200.0, "num_channels": 8,
                                         "window": 200, "stride": stride}
  names = list(ciil.CLASS_NAMES) + (["none"] if config == "all" else [])
  assert builder.info.features["label"].names == names
  assert set(builder.info.features.keys()) == {"emg", "label", "subject", "session",
                                               "repetition"}
  assert builder.info.supervised_keys == ("emg", "label")
  assert builder.info.homepage == "https://github.com/LibEMG/CIILData"
  for record in records["train"]:
    assert record["emg"].shape == (8, 200) and record["emg"].dtype == np.float32
  # Every file is one gesture: no `all` window is "none".
  assert all(int(r["label"]) < 5 for items in records.values() for r in items)


def test_dummy_sessions_and_repetitions(dummy_builds):
  sessions = {c: {s: {int(r["session"]) for r in items} for s, items in rec.items()}
              for c, (_, rec) in dummy_builds.items()}
  assert sessions["electrode_shift"] == {"train": {0}, "validation": {0}, "test": {2, 3, 4, 5}}
  assert sessions["minimal_training"] == {"train": {0}, "validation": {1},
                                          "test": {2, 3, 4, 5, 6, 7}}
  # ElectrodeShift trial_0 (session 1, only subject 13) is left out of the protocol, kept in all.
  all_ids = {(int(r["subject"]), int(r["session"])) for r in dummy_builds["all"][1]["train"]}
  assert (13, 1) in all_ids
  # The held-out validation rep is each person's last rep of each class (and R_1_C_2 of
  # subject 9, 190 lines, gives no window).
  _, records = dummy_builds["electrode_shift"]
  held_out = {(int(r["subject"]), int(r["label"]), int(r["repetition"]))
              for r in records["validation"]}
  assert held_out == {(9, 0, 1), (9, 1, 1), (9, 3, 1), (9, 4, 1), (13, 0, 2), (13, 3, 1)}
  assert {int(r["repetition"]) for r in records["test"]} == {0, 1}


def test_dummy_all_split_is_by_person(dummy_builds):
  _, records = dummy_builds["all"]
  assert testing.assert_subject_disjoint(records) == {"train": {13, 100},
                                                      "validation": {9, 110}}
  # The split is the shared hash of the person's folder in the archive.
  people = {"CIILData/ElectrodeShift/subject9": 9, "CIILData/ElectrodeShift/subject13": 13,
            "CIILData/MinimalTrainingData/subject0": 100,
            "CIILData/MinimalTrainingData/subject10": 110}
  assert {k: myo_common.all_split(p) for p, k in people.items()} == DUMMY_ALL_SPLIT


def test_dummy_quirks_in_scan():
  found = ciil.scan(DUMMY_DIR, ciil.GROUPS)
  assert found.game_logs == 12 and found.other_files == 0
  by_path = {r.source.split(f"{ciil.ROOT}/", 1)[1]: r for r in found.recordings}
  assert len(by_path) == 48
  assert by_path["ElectrodeShift/subject9/training/R_1_C_2.csv"].emg_tc.shape == (190, 8)
  extreme = by_path["ElectrodeShift/subject9/trial_1/R_0_C_0.csv"].emg_tc
  assert extreme.min() == -128 and extreme.max() == 127 and extreme.dtype == np.int8
  train = [r for r in found.recordings if r.group == ciil.MINIMAL_TRAINING and r.session == 0]
  assert {r.emg_tc.shape[0] for r in train} == {200}
  assert [r.subject for r in found.recordings] == sorted(r.subject for r in found.recordings)
  # The recorder's metadata names subject 11 for folder subject10: ids come from the folder.
  assert {r.subject for r in found.recordings} == {9, 13, 100, 110}


def test_dummy_band_pass_removes_offset(dummy_builds):
  _, records = dummy_builds["electrode_shift"]
  emg = np.stack([r["emg"] for r in records["train"]])
  # Channel 8 is stored 40 units above zero; the 20-90 Hz band-pass leaves no offset.
  assert abs(emg[:, 7].mean()) < 1.0 and 1.0 < emg[:, 0].std() < 5.0


def test_build_log_counts_skipped_files(tmp_path, caplog):
  with caplog.at_level(logging.WARNING, logger=ciil.__name__):
    _build("electrode_shift", DUMMY_DIR, tmp_path / "es")
    _build("minimal_training", DUMMY_DIR, tmp_path / "mt")
  lines = [r.getMessage() for r in caplog.records if r.name == ciil.__name__]
  assert len(lines) == 6
  es_validation = next(m for m in lines if m.startswith("ciil/electrode_shift validation"))
  assert "12 windows from 7 CSV files; 1 files shorter than 200" in es_validation
  assert "2 ElectrodeShift trial_0 CSV files" in es_validation
  mt_test = next(m for m in lines if m.startswith("ciil/minimal_training test"))
  assert "skipped 12 game-log files" in mt_test and "23 windows from 12 CSV" in mt_test


def _pack(source_root: Path, archive: Path, order_seed: int = 7) -> None:
  """Packs a CIILData/ folder into a .tar.xz, members in a shuffled order like the real one."""
  paths = sorted(source_root.rglob("*"))
  order = np.random.default_rng(order_seed).permutation(len(paths))
  with tarfile.open(archive, "w:xz") as tar:
    for i in order:
      tar.add(paths[i], arcname=f"{ciil.ROOT}/{paths[i].relative_to(source_root).as_posix()}",
              recursive=False)


def test_archive_and_unpacked_folder_give_identical_records(tmp_path, dummy_builds):
  manual = tmp_path / "manual"
  manual.mkdir()
  _pack(DUMMY_ROOT, manual / ciil.ARCHIVE_NAMES[0])
  _, from_archive = _build("all", manual, tmp_path / "tfds")
  testing.assert_same_records(dummy_builds["all"][1], from_archive)
  # The subject folders themselves as manual_dir work too.
  from_root = ciil.scan(DUMMY_ROOT, ciil.GROUPS).recordings
  from_tar = ciil.scan(manual, ciil.GROUPS).recordings
  assert [(r.subject, r.session, r.rep, r.cls) for r in from_tar] == [
      (r.subject, r.session, r.rep, r.cls) for r in from_root]
  assert all(np.array_equal(a.emg_tc, b.emg_tc) for a, b in zip(from_tar, from_root))
  assert from_tar[0].source.startswith(f"{manual / ciil.ARCHIVE_NAMES[0]}:{ciil.ROOT}/")


# ----------------------------------------------------------------------------- bad input
GOOD = b"1,2,3,4,5,6,7,8\r\n-1,-2,-3,-4,-5,-6,-7,-8\r\n"


@pytest.mark.parametrize("body, problem", [
    (GOOD + b"1,2,3,4,5,6,7\r\n", r"line 3 has 7 fields, expected 8"),
    (GOOD + b"1,2,3,4,5,6,7,8,9\r\n", r"line 3 has 9 fields"),
    (GOOD + b"\r\n" + GOOD, r"line 3 has 1 fields"),
    (GOOD + b"1,2,x,4,5,6,7,8\r\n", r"line 3, field 3: 'x' is not an integer"),
    (GOOD + b"1,2,3,4.5,5,6,7,8\r\n", r"line 3, field 4: '4.5' is not an integer"),
    (GOOD + b"1,2,3,4,5,6,7,200\r\n", r"value 200 at sample 2, channel 7 is outside"),
    (b"", r"empty file"),
    (GOOD + "1,2,3,4,5,6,7,\u00e9\r\n".encode(), r"not ASCII text"),
])
def test_parse_rejects_bad_files(body, problem):
  with pytest.raises(emg_common.CorpusError, match=problem) as info:
    ciil.parse_csv(body, "ElectrodeShift/subject9/training/R_0_C_0.csv")
  assert str(info.value).startswith("ElectrodeShift/subject9/training/R_0_C_0.csv: ")


def test_parse_reads_crlf_and_lf_alike():
  np.testing.assert_array_equal(ciil.parse_csv(GOOD, "a.csv"),
                                ciil.parse_csv(GOOD.replace(b"\r\n", b"\n"), "b.csv"))
  assert ciil.parse_csv(GOOD, "a.csv").tolist() == [list(range(1, 9)), list(range(-1, -9, -1))]


def _copy_dummy(tmp_path: Path) -> Path:
  manual = tmp_path / "manual"
  shutil.copytree(DUMMY_ROOT, manual / ciil.ROOT)
  return manual


def test_bad_csv_fails_the_build_and_leaves_nothing(tmp_path):
  manual = _copy_dummy(tmp_path)
  bad = manual / ciil.ROOT / "ElectrodeShift/subject13/trial_2/R_0_C_4.csv"
  lines = bad.read_bytes().split(b"\r\n")
  lines[40] = lines[40].rsplit(b",", 1)[0]   # a field lost
  bad.write_bytes(b"\r\n".join(lines))
  testing.assert_build_fails("ciil", manual, tmp_path / "tfds", "line 41 has 7 fields",
                             "subject13/trial_2/R_0_C_4.csv")
  with pytest.raises(registry.DatasetNotBuiltError, match="python -m data_builders.build ciil"):
    registry.load_split("ciil", "train", data_dir=tmp_path / "tfds")


def test_file_too_short_to_filter_fails_while_writing(tmp_path):
  manual = _copy_dummy(tmp_path)
  short = manual / ciil.ROOT / "ElectrodeShift/subject9/trial_4/R_0_C_4.csv"
  short.write_bytes(b"\r\n".join(short.read_bytes().split(b"\r\n")[:20]) + b"\r\n")
  testing.assert_build_fails("ciil", manual, tmp_path / "tfds", "too short to filter",
                             "subject9/trial_4/R_0_C_4.csv")


def test_truncated_archive_fails(tmp_path):
  manual = tmp_path / "manual"
  manual.mkdir()
  archive = manual / ciil.ARCHIVE_NAMES[0]
  _pack(DUMMY_ROOT, archive)
  archive.write_bytes(archive.read_bytes()[:archive.stat().st_size // 2])
  testing.assert_build_fails("ciil", manual, tmp_path / "tfds", "truncated or corrupt archive",
                             str(archive))


@pytest.mark.parametrize("edit, problem, mentions", [
    (lambda root: shutil.rmtree(root / "ElectrodeShift/subject9/trial_3"),
     r"is missing or holds no R_<rep>_C_<class>\.csv", "ElectrodeShift/subject9/trial_3/"),
    (lambda root: [p.unlink() for p in (root / "ElectrodeShift/subject13/training").glob("*.csv")],
     r"is missing or holds no", "ElectrodeShift/subject13/training/"),
    (lambda root: shutil.rmtree(root / "ElectrodeShift"),
     r"holds neither CIILData\.tar\.xz nor the unpacked CIILData/", "manual"),
    (lambda root: shutil.copy(root / "ElectrodeShift/subject9/trial_1/R_0_C_0.csv",
                              root / "ElectrodeShift/subject9/trial_1/R_0_C_7.csv"),
     r"class 7 is not one of 0\.\.4", "trial_1/R_0_C_7.csv"),
    (lambda root: shutil.copytree(root / "ElectrodeShift/subject9/trial_1",
                                  root / "ElectrodeShift/subject9/trial_1/extra"),
     r"a CSV outside the layout", "trial_1/extra/R_0_C_0.csv"),
    (lambda root: (root / "ElectrodeShift/subject9/training/metadata.json").write_text(
        (root / "ElectrodeShift/subject9/training/metadata.json").read_text()
        .replace("Wrist_Extension", "Wrist_Pronation")),
     r"has class 3 'Wrist_Pronation'; the classes must be", "subject9/training/metadata.json"),
    (lambda root: (root / "ElectrodeShift/subject9/trial_2/metadata.json").write_text("{"),
     r"not a JSON file", "subject9/trial_2/metadata.json"),
])
def test_bad_layout_fails_the_build(tmp_path, edit, problem, mentions):
  manual = _copy_dummy(tmp_path)
  edit(manual / ciil.ROOT)
  testing.assert_build_fails("ciil", manual, tmp_path / "tfds", problem, mentions)


def test_missing_or_empty_manual_dir(tmp_path):
  with pytest.raises(emg_common.CorpusError, match="does not exist"):
    ciil.scan(tmp_path / "nowhere", ciil.GROUPS)
  (tmp_path / "empty").mkdir()
  testing.assert_build_fails("ciil", tmp_path / "empty", tmp_path / "tfds",
                             "does not exist or is empty", str(tmp_path / "empty"))
  (tmp_path / "other" / "CIILData").mkdir(parents=True)
  (tmp_path / "other" / "CIILData" / "README.md").write_text("not the corpus")
  testing.assert_build_fails("ciil", tmp_path / "other", tmp_path / "tfds",
                             "holds neither CIILData.tar.xz nor the unpacked CIILData/",
                             str(tmp_path / "other"))


def test_archive_without_the_config_group_fails(tmp_path):
  root = tmp_path / "copy"
  shutil.copytree(DUMMY_ROOT, root)
  shutil.rmtree(root / "ElectrodeShift")
  manual = tmp_path / "manual"
  manual.mkdir()
  _pack(root, manual / ciil.ARCHIVE_NAMES[0])
  testing.assert_build_fails("ciil", manual, tmp_path / "tfds",
                             r"no CIILData/ElectrodeShift/subject<k>/.*file found", str(manual))


def test_other_group_alone_is_enough_for_its_config(tmp_path):
  manual = _copy_dummy(tmp_path)
  shutil.rmtree(manual / ciil.ROOT / "ElectrodeShift")
  _, records = _build("minimal_training", manual, tmp_path / "tfds")
  assert testing.split_sizes(records) == EXPECTED_SIZES["minimal_training"]


# ----------------------------------------------------------------------------- real data
# A full build of a labeled config takes 20-40 s on the shared 2-core machine, so the builds
# below use five real people's folders, extracted from the archive into the unpacked layout;
# the whole archive is scanned (parsed, ~5 s) once for the corpus-wide counts.
REAL_SUBSET = ("ElectrodeShift/subject9/", "ElectrodeShift/subject11/",
               "ElectrodeShift/subject13/", "MinimalTrainingData/subject0/",
               "MinimalTrainingData/subject10/")


def _require_real() -> None:
  testing.need_shared(REAL_ARCHIVE)


@pytest.fixture(scope="module")
def real_scan():
  _require_real()
  return ciil.scan(SHARED_CIIL, ciil.GROUPS)


@pytest.fixture(scope="module")
def real_subset(tmp_path_factory):
  """Five real people's folders (game logs and metadata included), unpacked layout.

  ElectrodeShift 11 holds the 190-line file, ElectrodeShift 13 a trial_0, MinimalTrainingData
  10 the game logs; ElectrodeShift 9 and MinimalTrainingData 10 are in `all`'s validation group.
  """
  _require_real()
  manual = tmp_path_factory.mktemp("real_subset")
  with tarfile.open(REAL_ARCHIVE, "r|xz") as tar:
    for info in tar:
      relative = info.name.split("/", 1)[-1]
      if info.isfile() and relative.startswith(REAL_SUBSET):
        target = manual / info.name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(tar.extractfile(info).read())
  return manual


@pytest.fixture(scope="module")
def real_electrode_shift(real_subset, tmp_path_factory):
  return _build("electrode_shift", real_subset, tmp_path_factory.mktemp("tfds_real_es"))[1]


def _protocol_counts(recordings, config: str) -> dict[str, collections.Counter]:
  """{split: Counter(class)} of windows, from file lengths and the README's protocol alone."""
  validation_people = {"ElectrodeShift": {9, 14}, "MinimalTrainingData": {4, 10}}
  counts: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
  for r in recordings:
    if config == "all":
      split = "validation" if r.folder_subject in validation_people[r.group] else "train"
    elif config == "electrode_shift":
      if r.group != "ElectrodeShift" or r.session == 1:
        continue
      split = "test" if r.session else ("validation" if r.rep == 4 else "train")
    else:
      if r.group != "MinimalTrainingData":
        continue
      split = {0: "train", 1: "validation"}.get(r.session, "test")
    stride = 100 if config == "all" else 50
    counts[split][r.cls] += max(0, (r.emg_tc.shape[0] - 200) // stride + 1)
  return dict(counts)


def test_real_corpus_layout(real_scan):
  recordings = real_scan.recordings
  groups = collections.Counter(r.group for r in recordings)
  assert groups == {"ElectrodeShift": 1380, "MinimalTrainingData": 880}
  assert {r.subject for r in recordings} == set(range(21)) | set(range(100, 111))
  assert real_scan.game_logs == 12 and real_scan.other_files == 0
  sessions = collections.Counter((r.group, r.session) for r in recordings)
  assert sessions[("ElectrodeShift", 1)] == 15          # trial_0: subjects 13 and 16 only
  assert {r.subject for r in recordings if r.group == "ElectrodeShift" and r.session == 1} == {
      13, 16}
  # Every ElectrodeShift person has reps 0..4 of every class in training: rep 4 is held out.
  training = collections.Counter((r.subject, r.cls) for r in recordings
                                 if r.group == "ElectrodeShift" and r.session == 0)
  assert set(training.values()) == {5} and len(training) == 21 * 5
  assert {r.rep for r in recordings if r.group == "ElectrodeShift" and r.session == 0} == set(
      range(5))
  lengths = [r.emg_tc.shape[0] for r in recordings]
  assert min(lengths) == 190 and max(lengths) == 690
  assert {r.emg_tc.shape[0] for r in recordings
          if r.group == "MinimalTrainingData" and r.session == 0} == {200}
  assert 1.88 < sum(lengths) / 200 / 3600 < 1.9   # hours
  assert min(r.emg_tc.min() for r in recordings) == -128
  assert max(r.emg_tc.max() for r in recordings) == 127


def test_real_corpus_window_counts(real_scan):
  """The whole corpus's windows per split and class (as measured by the full builds)."""
  expected = {
      "electrode_shift": {"train": [742, 748, 738, 738, 751],
                          "validation": [187, 183, 180, 182, 188],
                          "test": [1509, 1510, 1508, 1514, 1510]},
      "minimal_training": {"train": [11] * 5, "validation": [294, 292, 298, 296, 293],
                           "test": [1188, 1180, 1178, 1187, 1184]},
      "all": {"train": [1917, 1916, 1908, 1918, 1922], "validation": [282, 282, 281, 281, 280]},
  }
  for config, splits in expected.items():
    counts = _protocol_counts(real_scan.recordings, config)
    assert {s: [c[k] for k in range(5)] for s, c in counts.items()} == splits, config
  people = {"CIILData/ElectrodeShift/subject9", "CIILData/ElectrodeShift/subject14",
            "CIILData/MinimalTrainingData/subject4", "CIILData/MinimalTrainingData/subject10"}
  assert {r.person for r in real_scan.recordings
          if myo_common.all_split(r.person) == "validation"} == people


def test_real_electrode_shift_subset(real_electrode_shift, real_subset):
  records = real_electrode_shift
  assert testing.split_sizes(records) == {"train": 510, "validation": 110, "test": 1075}
  classes = {s: [collections.Counter(int(r["label"]) for r in items)[k] for k in range(5)]
             for s, items in records.items()}
  assert classes == {"train": [106, 103, 91, 104, 106], "validation": [25, 21, 18, 20, 26],
                     "test": [214, 215, 213, 217, 216]}
  found = ciil.scan(real_subset, ("ElectrodeShift",))
  assert {s: [c[k] for k in range(5)] for s, c in
          _protocol_counts(found.recordings, "electrode_shift").items()} == classes
  # Within person: the three people in every split; trial_0 of subject 13 is not written.
  assert testing.ids_by_split(records) == {s: {9, 11, 13} for s in testing.SPLITS}
  assert testing.ids_by_split(records, "repetition") == {
      "train": {0, 1, 2, 3}, "validation": {4}, "test": {0, 1}}
  assert testing.ids_by_split(records, "session") == {
      "train": {0}, "validation": {0}, "test": {2, 3, 4, 5}}
  # subject11/training/R_4_C_2.csv (190 lines) gives no validation window.
  assert not [r for r in records["validation"] if (int(r["subject"]), int(r["label"])) == (11, 2)]


def test_real_values_match_reference_and_myo_units(real_electrode_shift, real_subset):
  path = real_subset / "CIILData/ElectrodeShift/subject9/trial_1/R_0_C_0.csv"
  raw = np.loadtxt(path, delimiter=",")
  expected = _reference_windows({"raw": raw}, 50)
  got = sorted((r["emg"] for r in real_electrode_shift["test"] if _ids(r) == (9, 2, 0, 0)),
               key=lambda w: min(range(len(expected)),
                                 key=lambda i: np.abs(w - expected[i]).max()))
  assert len(got) == len(expected) == (raw.shape[0] - 200) // 50 + 1
  for window, want in zip(got, expected):
    np.testing.assert_allclose(window, want, atol=1e-3, rtol=1e-5)
  for split, items in real_electrode_shift.items():
    emg = np.stack([r["emg"] for r in items])
    assert np.isfinite(emg).all(), split
    assert 2.0 < emg.std() < 40.0 and np.abs(emg).max() < 400.0
    assert np.abs(emg.mean(axis=(0, 2))).max() < 0.5   # band-pass: no offset per channel


def test_real_minimal_training_subset(real_subset, tmp_path):
  _, records = _build("minimal_training", real_subset, tmp_path / "tfds")
  assert testing.split_sizes(records) == {"train": 10, "validation": 270, "test": 1080}
  for split, per_class in {"train": 2, "validation": 54, "test": 216}.items():
    assert collections.Counter(int(r["label"]) for r in records[split]) == {
        c: per_class for c in range(5)}
  assert testing.ids_by_split(records) == {s: {100, 110} for s in testing.SPLITS}
  assert testing.ids_by_split(records, "session") == {
      "train": {0}, "validation": {1}, "test": {2, 3, 4, 5, 6, 7}}


def test_real_all_subset(real_subset, tmp_path):
  _, records = _build("all", real_subset, tmp_path / "tfds")
  assert testing.split_sizes(records) == {"train": 1046, "validation": 701}
  assert testing.assert_subject_disjoint(records) == {"train": {11, 13, 100},
                                                      "validation": {9, 110}}
  assert [collections.Counter(int(r["label"]) for r in records["train"])[k]
          for k in range(6)] == [212, 209, 200, 210, 215, 0]
  assert (13, 1) in {(int(r["subject"]), int(r["session"])) for r in records["train"]}
