"""Tests of the myoarmband builder: dummy data (exact counts, values), bad input, the real copy."""

from __future__ import annotations

import collections
import logging
import random
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest

from data_builders import build as build_lib
from data_builders import emg_common, myo_common, registry, testing
from data_builders.myoarmband import myoarmband_dataset_builder as myo

HERE = Path(__file__).resolve().parent
DUMMY_DIR = HERE / "dummy_data"
DUMMY_ROOT = DUMMY_DIR / myo.ROOT
SHARED_MYO = testing.SHARED_DATA / "myoarmband"
REAL_ARCHIVE = SHARED_MYO / myo.ARCHIVE_NAMES[0]
SPLITS = testing.SPLITS
ALL_SPLITS = ("train", "validation")
PRE, EVAL = "PreTrainingDataset", "EvaluationDataset"

# Dummy people: PreTrainingDataset/Female2 -> 2, PreTrainingDataset/Male1 -> 51,
# EvaluationDataset/Male1 -> 151 (see dummy_data/make_dummy_data.py for the file lengths).
# Exact windows per split and class, worked out by hand from the file lengths.
DUMMY_CLASSES = {
    "cycle": {"train": [5, 5, 4, 4, 4, 5, 6], "validation": [2, 2, 4, 2, 2, 2, 2],
              "test": [2, 5, 2, 3, 2, 2, 3]},
    "protocol": {"train": [3] * 7, "validation": [1, 1, 1, 1, 1, 1, 2], "test": [2] * 7},
    "all": {"train": [10, 11, 10, 10, 10, 10, 11, 0], "validation": [1, 1, 1, 1, 0, 0, 0, 0]},
}
DUMMY_SUBJECTS = {
    "cycle": {"train": {2: 17, 51: 2, 151: 14}, "validation": {2: 8, 51: 1, 151: 7},
              "test": {2: 10, 51: 1, 151: 8}},
    "protocol": {"train": {151: 21}, "validation": {151: 8}, "test": {151: 14}},
    "all": {"train": {2: 30, 151: 42}, "validation": {51: 4}},
}


def _splits(config: str) -> tuple[str, ...]:
  return ALL_SPLITS if config == "all" else SPLITS


def _build(manual_dir: Path, data_dir: Path, config: str) -> tuple[object, testing.Records]:
  builder = build_lib.build("myoarmband", manual_dir=manual_dir, data_dir=data_dir, config=config)
  return builder, testing.read_splits("myoarmband", data_dir, config, _splits(config))


@pytest.fixture(scope="module")
def dummy_builds(tmp_path_factory) -> dict[str, tuple[object, testing.Records]]:
  data_dir = tmp_path_factory.mktemp("tfds_dummy")
  return {config: _build(DUMMY_DIR, data_dir, config) for config in ("cycle", "protocol", "all")}


def _pack(folder: Path, archive: Path, seed: int = 7) -> Path:
  """Packs `folder` (holding MyoArmbandDataset/) into a .tar.xz in a shuffled member order.

  The real archive is not sorted by path either (it starts with PreTrainingDataset/Male7/).
  """
  root = folder / myo.ROOT
  paths = sorted(root.rglob("*"))
  random.Random(seed).shuffle(paths)
  with tarfile.open(archive, "w:xz") as tar:
    tar.add(root, arcname=myo.ROOT, recursive=False)
    for path in paths:
      tar.add(path, arcname=path.relative_to(folder).as_posix(), recursive=False)
  return archive


def _raw(group: str, person: str, session: str, i: int, root: Path = DUMMY_ROOT) -> np.ndarray:
  path = root / group / person / session / f"classe_{i}.dat"
  return np.fromfile(path, dtype="<i2").reshape(-1, 8)


# ----------------------------------------------------------------------------- dummy data
@pytest.mark.parametrize("config", ["cycle", "protocol", "all"])
def test_dummy_counts_per_split_class_and_subject(dummy_builds, config):
  builder, records = dummy_builds[config]
  assert sorted(builder.info.splits) == sorted(_splits(config))
  for split in _splits(config):
    expected = DUMMY_CLASSES[config][split]
    assert builder.info.splits[split].num_examples == sum(expected)
    labels = collections.Counter(int(r["label"]) for r in records[split])
    assert [labels[k] for k in range(len(expected))] == expected, split
    subjects = collections.Counter(int(r["subject"]) for r in records[split])
    assert subjects == DUMMY_SUBJECTS[config][split], split


def _expected_from_sizes(config: str) -> dict[str, collections.Counter]:
  """Windows per (split, subject) from the dummy file sizes and the brief's split rules alone."""
  subject_of = {(PRE, "Female2"): 2, (PRE, "Male1"): 51, (EVAL, "Male1"): 151}
  stride = 100 if config == "all" else 50
  out: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
  for path in DUMMY_ROOT.glob("*/*/*/classe_*.dat"):
    group, person, session = path.parts[-4:-1]
    i = int(path.stem.split("_")[1])
    samples = path.stat().st_size // 16
    windows = (samples - 200) // stride + 1 if samples >= 200 else 0
    if config == "all":
      split = "validation" if (group, person) == (PRE, "Male1") else "train"
    elif config == "cycle":
      split = None if session != "training0" else ["train", "train", "validation", "test"][i // 7]
    else:
      split = None if group != EVAL else (
          "test" if session != "training0" else ("validation" if i // 7 == 3 else "train"))
    if split and windows:
      out[split][subject_of[(group, person)]] += windows
  return out


@pytest.mark.parametrize("config", ["cycle", "protocol", "all"])
def test_dummy_counts_follow_file_sizes(dummy_builds, config):
  _, records = dummy_builds[config]
  got = {s: collections.Counter(int(r["subject"]) for r in records[s]) for s in _splits(config)}
  assert got == _expected_from_sizes(config)


def test_dummy_features_and_metadata(dummy_builds):
  for config, (builder, records) in dummy_builds.items():
    assert dict(builder.info.metadata) == {"sample_rate_hz": 200.0, "num_channels": 8,
                                           "window": 200,
                                           "stride": 100 if config == "all" else 50}
    names = list(myo.CLASS_NAMES) + ([myo_common.UNLABELED] if config == "all" else [])
    assert builder.info.features["label"].names == names
    assert builder.info.supervised_keys == ("emg", "label")
    assert set(builder.info.features.keys()) == {"emg", "label", "subject", "session",
                                                 "repetition"}
    for split in _splits(config):
      for record in records[split]:
        assert record["emg"].shape == (8, 200) and record["emg"].dtype == np.float32
        assert np.isfinite(record["emg"]).all()
  assert myo.Builder.BUILDER_CONFIGS[0].name == "cycle"
  assert myo.CLASS_NAMES == ("neutral", "radial_deviation", "wrist_flexion", "ulnar_deviation",
                             "wrist_extension", "hand_close", "hand_open")


def _ids(records: testing.Records, split: str) -> set[tuple[int, int, int]]:
  return {(int(r["subject"]), int(r["session"]), int(r["repetition"])) for r in records[split]}


def test_dummy_subject_session_repetition_ids(dummy_builds):
  _, cycle = dummy_builds["cycle"]
  # cycle: training0 only (session 0); repetition = cycle + 1: 1-2 train, 3 validation, 4 test.
  assert _ids(cycle, "train") == {(s, 0, r) for s in (2, 51, 151) for r in (1, 2)}
  assert _ids(cycle, "validation") == {(s, 0, 3) for s in (2, 51, 151)}
  assert _ids(cycle, "test") == {(s, 0, 4) for s in (2, 51, 151)}
  _, protocol = dummy_builds["protocol"]
  assert _ids(protocol, "train") == {(151, 0, r) for r in (1, 2, 3)}
  assert _ids(protocol, "validation") == {(151, 0, 4)}
  # Test0 holds long files only in cycle 0, Test1 only in cycle 3 (see the dummy generator).
  assert _ids(protocol, "test") == {(151, 1, 1), (151, 2, 4)}
  _, every = dummy_builds["all"]
  assert {(s, t) for s, t, _ in _ids(every, "train")} == {(2, 0), (151, 0), (151, 1), (151, 2)}
  assert _ids(every, "validation") == {(51, 0, r) for r in (1, 2, 3, 4)}


def test_same_folder_name_in_both_groups_gets_two_subject_ids():
  recordings = myo.find_recordings(DUMMY_DIR)
  ids = {(r.group, r.person): r.subject for r in recordings}
  assert ids == {(PRE, "Female2"): 2, (PRE, "Male1"): 51, (EVAL, "Male1"): 151}
  assert len(recordings) == 5 * 28
  # The stray files of the publisher's layout are present and ignored.
  assert (DUMMY_ROOT / EVAL / "Male1" / "Test0" / "CNN_fully_trained.p").exists()
  assert (DUMMY_ROOT / PRE / "Male1" / "experiment.csv").exists()
  assert all(r.path.endswith(".dat") for r in recordings)


def test_dummy_window_values_match_reference(dummy_builds):
  _, records = dummy_builds["cycle"]
  # Female2 classe_22.dat: 350 samples of gesture 22 % 7 = 1 in cycle 3 -> 4 test windows.
  raw = _raw(PRE, "Female2", "training0", 22)
  assert raw.shape == (350, 8)
  reference = testing.reference_filter(raw.T, 200.0, (20.0, 90.0), 50.0)
  expected = [reference[:, k:k + 200] for k in (0, 50, 100, 150)]
  got = [r["emg"] for r in records["test"] if (int(r["subject"]), int(r["label"])) == (2, 1)]
  assert len(got) == 4
  got.sort(key=lambda w: int(np.argmin([np.abs(w - e).max() for e in expected])))
  for window, want in zip(got, expected):
    np.testing.assert_allclose(window, want, atol=1e-3, rtol=1e-5)


def test_dummy_filter_removes_offset_and_keeps_extremes(dummy_builds):
  _, records = dummy_builds["cycle"]
  emg = np.stack([r["emg"] for s in SPLITS for r in records[s]])
  raw = _raw(PRE, "Male1", "training0", 0).astype(float)
  assert raw[:, 3].mean() > 20.0                 # channel 4 is stored ~30 units above zero
  assert abs(emg[:, 3].mean()) < 1.0             # the 20-90 Hz band-pass removes it
  assert 3.0 < emg.std() < 12.0
  extremes = _raw(PRE, "Female2", "training0", 0)
  assert extremes.min() == -128 and extremes.max() == 127   # int8 extremes stored as int16
  first = [r["emg"] for r in records["train"]
           if (int(r["subject"]), int(r["label"]), int(r["repetition"])) == (2, 0, 1)]
  want = testing.reference_filter(extremes.T, 200.0, (20.0, 90.0), 50.0)[:, :200]
  assert len(first) == 1
  np.testing.assert_allclose(first[0], want, atol=1e-3, rtol=1e-5)


def test_all_windows_are_the_labeled_windows_at_stride_100(dummy_builds):
  _, every = dummy_builds["all"]
  _, cycle = dummy_builds["cycle"]
  _, protocol = dummy_builds["protocol"]
  labeled = {r["emg"].tobytes(): (int(r["label"]), int(r["subject"]), int(r["session"]))
             for records in (cycle, protocol) for s in SPLITS for r in records[s]}
  for split in ALL_SPLITS:
    for r in every[split]:
      # Each file is one gesture: every `all` window is labeled, never "none".
      assert int(r["label"]) < len(myo.CLASS_NAMES)
      assert labeled[r["emg"].tobytes()] == (int(r["label"]), int(r["subject"]),
                                             int(r["session"]))


def test_short_files_are_skipped_and_counted(tmp_path, caplog):
  with caplog.at_level(logging.WARNING, logger=myo.__name__):
    build_lib.build("myoarmband", manual_dir=DUMMY_DIR, data_dir=tmp_path, config="cycle")
  messages = sorted(r.getMessage() for r in caplog.records if r.name == myo.__name__)
  # PreTrainingDataset/Male1 has 4 long files (0, 8, 16, 24); its others are < 200 samples.
  assert messages == [
      "myoarmband cycle/test: skipped 6 of 21 files shorter than one window (200 samples)",
      "myoarmband cycle/train: skipped 12 of 42 files shorter than one window (200 samples)",
      "myoarmband cycle/validation: skipped 6 of 21 files shorter than one window (200 samples)"]


def test_archive_and_unpacked_folder_give_identical_records(dummy_builds, tmp_path):
  manual = tmp_path / "manual"
  manual.mkdir()
  _pack(DUMMY_DIR, manual / myo.ARCHIVE_NAMES[0])
  assert [r.path for r in myo.find_recordings(manual)] == [
      r.path for r in myo.find_recordings(DUMMY_DIR)]
  for config in ("cycle", "all"):
    _, records = _build(manual, tmp_path / "tfds", config)
    testing.assert_same_records(dummy_builds[config][1], records)


def test_manual_dir_with_one_group(dummy_builds, tmp_path):
  evaluation = [r.path for r in myo.find_recordings(DUMMY_DIR) if r.group == EVAL]
  layouts = {
      "root_folder": tmp_path / "a" / myo.ROOT / EVAL,   # manual_dir/MyoArmbandDataset/<group>
      "group_folders": tmp_path / "b" / EVAL,            # manual_dir/<group>
      "group_itself": tmp_path / "c" / EVAL,             # manual_dir is the group folder
  }
  for where in layouts.values():
    shutil.copytree(DUMMY_ROOT / EVAL, where)
  manual_dirs = [tmp_path / "a", tmp_path / "a" / myo.ROOT, tmp_path / "b", layouts["group_itself"]]
  for manual in manual_dirs:
    assert [r.path for r in myo.find_recordings(manual)] == evaluation, manual
  _, records = _build(layouts["group_itself"], tmp_path / "tfds", "protocol")
  testing.assert_same_records(dummy_builds["protocol"][1], records)
  shutil.copytree(DUMMY_ROOT / PRE, tmp_path / "d" / PRE)
  assert {r.person_id for r in myo.find_recordings(tmp_path / "d")} == {
      f"{PRE}/Female2", f"{PRE}/Male1"}


def test_protocol_needs_the_evaluation_layout(tmp_path):
  shutil.copytree(DUMMY_ROOT / PRE, tmp_path / "manual" / PRE)
  with pytest.raises(emg_common.CorpusError, match="config 'protocol' needs the publisher's "
                     "EvaluationDataset layout") as info:
    build_lib.build("myoarmband", manual_dir=tmp_path / "manual", data_dir=tmp_path / "tfds",
                    config="protocol")
  assert str(tmp_path / "manual") in str(info.value)
  assert not registry.get_builder("myoarmband", data_dir=tmp_path / "tfds",
                                  config="protocol").is_prepared()


# ----------------------------------------------------------------------------- bad input
def _copy_dummy(tmp_path: Path) -> Path:
  manual = tmp_path / "manual"
  shutil.copytree(DUMMY_DIR / myo.ROOT, manual / myo.ROOT)
  return manual


def test_truncated_archive(tmp_path):
  manual = tmp_path / "manual"
  manual.mkdir()
  archive = _pack(DUMMY_DIR, manual / myo.ARCHIVE_NAMES[0])
  archive.write_bytes(archive.read_bytes()[:archive.stat().st_size // 2])
  testing.assert_build_fails("myoarmband", manual, tmp_path / "tfds", "truncated or corrupt",
                             str(archive))


@pytest.mark.parametrize("content, problem", [
    (lambda data: data + b"\x01\x00\x02", r"size 3\d+ bytes is not a multiple of 16"),
    (lambda data: b"", "empty file"),
    (lambda data: data[:16 * 10], "too short to filter"),
    (lambda data: data[:16 * 5] + np.int16(300).tobytes() + data[16 * 5 + 2:],
     r"value 300 at sample 5, channel 0 is outside the Myo's range \[-128, 127\]"),
])
def test_bad_file_fails_the_build(tmp_path, content, problem):
  manual = _copy_dummy(tmp_path)
  bad = manual / myo.ROOT / EVAL / "Male1" / "training0" / "classe_23.dat"
  bad.write_bytes(content(bad.read_bytes()))
  testing.assert_build_fails("myoarmband", manual, tmp_path / "tfds", problem,
                             f"{EVAL}/Male1/training0/classe_23.dat")


@pytest.mark.parametrize("change, problem, mentions", [
    (lambda root: (root / PRE / "Female2" / "training0" / "classe_9.dat").unlink(),
     r"missing classe_9.dat \(a session folder holds", f"{PRE}/Female2/training0"),
    (lambda root: shutil.rmtree(root / EVAL / "Male1" / "Test1"),
     r"no Test1 folder with classe_<i>.dat files", f"{EVAL}/Male1"),
    (lambda root: [p.unlink() for p in (root / PRE / "Male1" / "training0").iterdir()],
     r"no training0 folder", f"{PRE}/Male1"),
    (lambda root: shutil.copy(root / PRE / "Male1" / "training0" / "classe_0.dat",
                              root / PRE / "Male1" / "training0" / "classe_28.dat"),
     "unexpected file; every .dat file must be", f"{PRE}/Male1/training0/classe_28.dat"),
    (lambda root: shutil.copytree(root / PRE / "Male1", root / PRE / "Person3"),
     "unexpected file", f"{PRE}/Person3/training0/classe_0.dat"),
    (lambda root: shutil.copytree(root / EVAL / "Male1" / "Test0",
                                  root / EVAL / "Male1" / "test0"),
     "are the same recording", f"{EVAL}/Male1/test0/classe_0.dat"),
    (lambda root: shutil.copytree(root / PRE / "Male1", root / PRE / "Male50"),
     "person number 50 is not below 50", f"{PRE}/Male50/training0/classe_0.dat"),
])
def test_bad_layout_fails_the_build(tmp_path, change, problem, mentions):
  manual = _copy_dummy(tmp_path)
  change(manual / myo.ROOT)
  testing.assert_build_fails("myoarmband", manual, tmp_path / "tfds", problem, mentions)


def test_missing_or_empty_manual_dir(tmp_path):
  manual = tmp_path / "manual"
  with pytest.raises(emg_common.CorpusError, match="does not exist") as info:
    myo.find_recordings(manual)
  assert str(manual) in str(info.value)
  manual.mkdir()
  with pytest.raises(emg_common.CorpusError, match=f"manual_dir {manual} holds neither"):
    myo.find_recordings(manual)
  (manual / myo.ROOT / PRE / "Male1" / "training0").mkdir(parents=True)   # empty folders
  testing.assert_build_fails("myoarmband", manual, tmp_path / "tfds", "holds neither",
                             str(manual))


# ----------------------------------------------------------------------------- real data
def _real_sizes() -> dict[str, int]:
  """Sample count of every real .dat file, read from the archive's member headers alone."""
  testing.need_shared(REAL_ARCHIVE)
  with tarfile.open(REAL_ARCHIVE, "r:xz") as tar:
    return {m.name: m.size // 16 for m in tar.getmembers() if m.name.endswith(".dat")}


# A full `cycle` build of the real copy writes ~10 000 windows and takes 20-40 s on the shared
# 2-core machine; the written records are checked on a subset of four real people instead (their
# files extracted from the archive into the unpacked layout); the full corpus's split counts are
# checked on the real file list.
REAL_SUBSET = ("Female0", "Female8", "Male1", "Male7")


@pytest.fixture(scope="module")
def real_cycle(tmp_path_factory) -> testing.Records:
  testing.need_shared(REAL_ARCHIVE)
  manual = tmp_path_factory.mktemp("real_subset")
  wanted = tuple(f"{myo.ROOT}/{PRE}/{person}/" for person in REAL_SUBSET)
  with tarfile.open(REAL_ARCHIVE, "r:xz") as tar:
    for member in tar:
      if member.isfile() and member.name.startswith(wanted):
        target = manual / member.name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(tar.extractfile(member).read())
  return _build(manual, tmp_path_factory.mktemp("tfds_real"), "cycle")[1]


@pytest.fixture(scope="module")
def real_recordings() -> list[myo.Recording]:
  testing.need_shared(REAL_ARCHIVE)
  return myo.find_recordings(SHARED_MYO)


def test_real_layout(real_recordings):
  sizes = _real_sizes()
  assert len(sizes) == 616
  assert min(sizes.values()) == 732 and max(sizes.values()) == 1038
  recordings = real_recordings
  assert len(recordings) == 616
  assert {r.group for r in recordings} == {PRE}
  assert sorted({r.subject for r in recordings}) == [*range(10), *range(50, 62)]
  assert collections.Counter(r.label for r in recordings) == {k: 88 for k in range(7)}


def _cycle_split(path: str) -> str:
  return ["train", "train", "validation", "test"][int(path.rsplit("_", 1)[1][:-4]) // 7]


def test_real_cycle_split_counts_of_the_whole_corpus(real_recordings):
  sizes = _real_sizes()
  expected: collections.Counter = collections.Counter()
  for name, samples in sizes.items():
    expected[_cycle_split(name)] += (samples - 200) // 50 + 1
  # The builder's split rule over the real file list gives the same counts as the file names.
  got: collections.Counter = collections.Counter()
  for r in real_recordings:
    got[myo.split_of(r, "cycle")] += (sizes[f"{myo.ROOT}/{r.path}"] - 200) // 50 + 1
  assert got == expected == {"train": 4992, "validation": 2496, "test": 2504}


def test_real_subset_cycle_counts_per_split_class_and_subject(real_cycle):
  sizes = _real_sizes()
  expected: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
  subject_of = {"Female0": 0, "Female8": 8, "Male1": 51, "Male7": 57}
  for name, samples in sizes.items():
    person = name.split("/")[2]
    if person in REAL_SUBSET:
      expected[_cycle_split(name)][subject_of[person]] += (samples - 200) // 50 + 1
  got = {s: collections.Counter(int(r["subject"]) for r in real_cycle[s]) for s in SPLITS}
  assert got == expected
  assert testing.split_sizes(real_cycle) == {"train": 912, "validation": 463, "test": 454}
  classes = {s: [collections.Counter(int(r["label"]) for r in real_cycle[s])[k] for k in range(7)]
             for s in SPLITS}
  assert classes == {"train": [130, 128, 125, 134, 134, 130, 131],
                     "validation": [68, 66, 65, 66, 68, 66, 64],
                     "test": [66, 64, 65, 65, 65, 65, 64]}
  # Within-person protocol: every person in every split, repetition = cycle + 1.
  assert testing.ids_by_split(real_cycle) == {s: {0, 8, 51, 57} for s in SPLITS}
  assert testing.ids_by_split(real_cycle, "repetition") == {
      "train": {1, 2}, "validation": {3}, "test": {4}}
  assert testing.ids_by_split(real_cycle, "session") == {s: {0} for s in SPLITS}


def test_real_values_finite_and_in_myo_units(real_cycle):
  for split in SPLITS:
    emg = np.stack([r["emg"] for r in real_cycle[split]])
    assert np.isfinite(emg).all()
    # Filtered int8 samples: a spread of ~15 units, never far beyond the int8 range.
    assert 10.0 < emg.std() < 25.0 and np.abs(emg).max() < 256.0
    assert np.abs(emg.mean(axis=(0, 2))).max() < 0.5   # the band-pass leaves no offset


def test_real_all_split_by_person(real_recordings):
  # The `all` build itself takes ~10 s, too long for the suite: its split rule and window counts
  # are checked here on the real file list (the dummy tests check the written records).
  sizes = _real_sizes()
  windows: collections.Counter = collections.Counter()
  people: dict[str, set[str]] = collections.defaultdict(set)
  for r in real_recordings:
    split = myo.split_of(r, "all")
    windows[split] += (sizes[f"{myo.ROOT}/{r.path}"] - 200) // 100 + 1
    people[split].add(r.person_id)
  assert dict(windows) == {"train": 4649, "validation": 466}
  assert people["validation"] == {f"{PRE}/Female8", f"{PRE}/Male1"}
  assert len(people["train"]) == 20 and not people["train"] & people["validation"]


def test_real_protocol_needs_the_evaluation_group(tmp_path):
  testing.need_shared(REAL_ARCHIVE)
  with pytest.raises(emg_common.CorpusError, match="needs the publisher's EvaluationDataset"):
    build_lib.build("myoarmband", manual_dir=SHARED_MYO, data_dir=tmp_path, config="protocol")
