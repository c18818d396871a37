"""Tests of the myodisco builder: dummy data (exact counts and values), bad input, the real copy."""

from __future__ import annotations

import collections
import logging
import random
import re
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest

from data_builders import build as build_lib
from data_builders import emg_common, myo_common, testing
from data_builders.myodisco import myodisco_dataset_builder as md

HERE = Path(__file__).resolve().parent
DUMMY_DIR = HERE / "dummy_data"
DUMMY_ROOT = DUMMY_DIR / md.ROOT
SHARED_MYODISCO = testing.SHARED_DATA / "myodisco"
REAL_ARCHIVE = SHARED_MYODISCO / md.ARCHIVE_NAMES[0]
SPLITS = testing.SPLITS
NAME_RE = re.compile(r"S(\d+)/(day1|day2|positions/(\d))/R_(\d+)_C_(\d+)_EMG\.csv")
LOGGER = md.__name__


def _file_key(path: str) -> tuple[int, int, int, int]:
  """(subject, session, repetition, class) read straight off a publisher path."""
  subject, folder, position, rep, cls = NAME_RE.fullmatch(path).groups()
  session = {"day1": 1, "day2": 2}.get(folder) or 10 + int(position)
  return int(subject), session, int(rep), int(cls)


def _protocol_split(subject: int, session: int, rep: int, protocol: str) -> str | None:
  """The README's split table, written out independently of the builder."""
  if protocol == "all":
    return "validation" if subject == 5 else "train"   # the dummy and real hash groups
  train = 1 if protocol == "cross_day" else 2
  if session == train:
    return "validation" if rep >= 16 else "train"
  if protocol == "cross_day":
    return "test" if session == 2 else None
  return "test" if session > 10 else None


def _expected(rows_by_path: dict[str, int], protocol: str, stride: int) -> collections.Counter:
  """Counter of (split, label, subject, session, repetition) from row counts alone."""
  counts = collections.Counter()
  for path, rows in rows_by_path.items():
    subject, session, rep, cls = _file_key(path)
    split = _protocol_split(subject, session, rep, protocol)
    if split is not None and rows >= 200:
      counts[(split, cls, subject, session, rep)] += (rows - 200) // stride + 1
  return counts


def _got(records: testing.Records) -> collections.Counter:
  return collections.Counter((split, int(r["label"]), int(r["subject"]), int(r["session"]),
                              int(r["repetition"])) for split in records for r in records[split])


def _dummy_rows() -> dict[str, int]:
  return {p.relative_to(DUMMY_ROOT).as_posix(): len(p.read_bytes().splitlines())
          for p in DUMMY_ROOT.rglob("*.csv")}


def _pack(folder: Path, archive: Path, shuffle_seed: int | None = 7) -> Path:
  """Packs `folder` (holding MyoDisCo/) into a .tar.xz, members in a shuffled order as in
  the publisher's archive."""
  paths = sorted(folder.rglob("*"))
  if shuffle_seed is not None:
    random.Random(shuffle_seed).shuffle(paths)
  with tarfile.open(archive, "w:xz") as tar:
    for path in paths:
      if path.is_file():
        tar.add(path, path.relative_to(folder).as_posix())
  return archive


# ----------------------------------------------------------------------------- dummy data
@pytest.fixture(scope="module", params=["cross_day", "limb_position"])
def dummy_build(request, tmp_path_factory):
  return testing.build_and_read("myodisco", DUMMY_DIR, tmp_path_factory.mktemp(request.param),
                                config=request.param)


def test_dummy_exact_counts_per_split_class_subject(dummy_build):
  builder, records = dummy_build
  protocol = builder.builder_config.name
  sizes = {"cross_day": {"train": 20, "validation": 19, "test": 38},
           "limb_position": {"train": 20, "validation": 18, "test": 73}}[protocol]
  assert testing.split_sizes(records) == sizes
  assert {s: builder.info.splits[s].num_examples for s in SPLITS} == sizes
  assert _got(records) == _expected(_dummy_rows(), protocol, 50)
  if protocol == "cross_day":
    assert collections.Counter(int(r["label"]) for r in records["test"]) == {
        2: 5, 3: 4, 9: 5, 0: 4, 4: 5, 5: 5, 6: 5, 7: 5}
    assert collections.Counter(int(r["subject"]) for r in records["validation"]) == {
        1: 4, 4: 5, 5: 5, 10: 5}


def test_dummy_features_metadata_and_ids(dummy_build):
  builder, records = dummy_build
  protocol = builder.builder_config.name
  assert dict(builder.info.metadata) == {"sample_rate_hz": 200.0, "num_channels": 8,
                                         "window": 200, "stride": 50}
  assert builder.info.features["label"].names == list(md.CLASS_NAMES)
  assert builder.info.supervised_keys == ("emg", "label")
  assert set(builder.info.features.keys()) == {"emg", "label", "subject", "session",
                                               "repetition"}
  for split in SPLITS:
    for record in records[split]:
      assert record["emg"].shape == (8, 200) and record["emg"].dtype == np.float32
  assert testing.ids_by_split(records) == {s: {1, 4, 5, 10} for s in SPLITS}
  sessions = testing.ids_by_split(records, "session")
  train_session = 1 if protocol == "cross_day" else 2
  assert sessions["train"] == sessions["validation"] == {train_session}
  assert sessions["test"] == ({2} if protocol == "cross_day" else {11, 12, 13, 14})
  reps = testing.ids_by_split(records, "repetition")
  assert reps["validation"] <= set(range(16, 20)) and max(reps["train"]) == 15
  if protocol == "limb_position":
    assert reps["test"] == {0, 1, 2, 3, 4}   # positions hold reps 0..4, 0-based


def test_dummy_windows_match_reference_filter(dummy_build):
  builder, records = dummy_build
  # cross_day: a 404-row day-1 file (train); limb_position: a 426-row position-4 file (test).
  path, split, ids, label = {
      "cross_day": ("S5/day1/R_15_C_9_EMG.csv", "train", (5, 1, 15), 9),
      "limb_position": ("S1/positions/4/R_4_C_7_EMG.csv", "test", (1, 14, 4), 7),
  }[builder.builder_config.name]
  raw = np.loadtxt(DUMMY_ROOT / path, delimiter=",")
  filtered = testing.reference_filter(raw.T, 200, (20, 90), 50)
  expected = [filtered[:, k:k + 200] for k in range(0, raw.shape[0] - 199, 50)]
  mine = [r for r in records[split]
          if (int(r["subject"]), int(r["session"]), int(r["repetition"])) == ids]
  assert len(mine) == len(expected) == 5
  assert {int(r["label"]) for r in mine} == {label}
  for want in expected:
    assert sum(np.allclose(r["emg"], want, atol=1e-4, rtol=1e-5) for r in mine) == 1


def test_dummy_band_pass_removes_offset(dummy_build):
  _, records = dummy_build
  emg = np.stack([r["emg"] for r in records["train"]])
  assert abs(emg[:, 7].mean()) < 1.0      # channel 8 is stored 40 units above zero
  assert 1.0 < emg[:, 0].std() < 8.0


def test_all_config_every_window_by_person(tmp_path, caplog):
  with caplog.at_level(logging.INFO, logger=LOGGER):
    builder = build_lib.build("myodisco", manual_dir=DUMMY_DIR, data_dir=tmp_path / "all",
                              config="all")
  records = testing.read_splits("myodisco", tmp_path / "all", "all", ("train", "validation"))
  assert builder.info.features["label"].names == list(md.CLASS_NAMES) + [myo_common.UNLABELED]
  assert dict(builder.info.metadata)["stride"] == 100
  assert testing.split_sizes(records) == {"train": 65, "validation": 23}
  assert testing.assert_subject_disjoint(records) == {"train": {1, 4, 10}, "validation": {5}}
  assert _got(records) == _expected(_dummy_rows(), "all", 100)
  # Each file is one gesture, so no window is "none"; all three day/position kinds are in.
  assert {int(r["label"]) for s in records for r in records[s]} == set(range(10))
  assert testing.ids_by_split(records, "session")["train"] == {1, 2, 11, 12, 13, 14}
  assert "split train: 24 file(s) read, 1 shorter than one window" in caplog.text
  # Every `all` window (stride 100) is one of the labeled windows (stride 50), same ids.
  labeled = {}
  for config in ("cross_day", "limb_position"):
    _, part = testing.build_and_read("myodisco", DUMMY_DIR, tmp_path / config, config=config)
    for split in part:
      for r in part[split]:
        labeled[r["emg"].tobytes()] = (int(r["label"]), int(r["subject"]), int(r["session"]))
  for split in records:
    for r in records[split]:
      assert labeled[r["emg"].tobytes()] == (int(r["label"]), int(r["subject"]),
                                             int(r["session"]))


def test_archive_and_unpacked_folder_give_same_records(tmp_path):
  (tmp_path / "manual").mkdir()
  archive = _pack(DUMMY_DIR, tmp_path / "manual" / md.ARCHIVE_NAMES[0])
  assert md.survey(archive.parent) == md.survey(DUMMY_DIR) == md.survey(DUMMY_ROOT)
  _, from_archive = testing.build_and_read("myodisco", archive.parent, tmp_path / "a",
                                           config="limb_position")
  _, from_folder = testing.build_and_read("myodisco", DUMMY_DIR, tmp_path / "b",
                                          config="limb_position")
  testing.assert_same_records(from_folder, from_archive)


def test_survey_lists_layout_and_logs_metadata_quirks(caplog):
  with caplog.at_level(logging.WARNING, logger=LOGGER):
    recordings = md.survey(DUMMY_DIR)
  assert len(recordings) == 32
  assert collections.Counter(r.subject for r in recordings) == {1: 8, 4: 8, 5: 8, 10: 8}
  assert collections.Counter(r.session for r in recordings) == {1: 8, 2: 8, 11: 4, 12: 4,
                                                                13: 4, 14: 4}
  # S1/day2 has no metadata.json; S4/day1 lists 11 classes and two absent C_10 files; S10's
  # metadata names participant S11 (ignored: the folder gives the subject).
  assert ("missing in 1 folder(s) ['S1/day2']; 1 folder(s) ['S4/day1'] list other class names"
          in caplog.text)
  assert "2 listed file(s) absent" in caplog.text
  snap = next(r for r in recordings if r.path == "S4/day1/R_5_C_7_EMG.csv")
  assert (snap.subject, snap.session, snap.repetition, md.CLASS_NAMES[snap.label]) == (
      4, 1, 5, "snap")


def test_dummy_data_is_regenerated_exactly(tmp_path):
  script = DUMMY_DIR / "make_dummy_data.py"
  copy = tmp_path / "make_dummy_data.py"
  shutil.copy(script, copy)
  namespace: dict = {"__name__": "dummy", "__file__": str(copy)}
  exec(compile(copy.read_text(), str(copy), "exec"), namespace)   # pylint: disable=exec-used
  namespace["main"]()
  made = {p.relative_to(tmp_path).as_posix(): p.read_bytes()
          for p in (tmp_path / md.ROOT).rglob("*") if p.is_file()}
  committed = {p.relative_to(DUMMY_DIR).as_posix(): p.read_bytes()
               for p in DUMMY_ROOT.rglob("*") if p.is_file()}
  assert made == committed
  assert sum(map(len, committed.values())) < 300_000


# ----------------------------------------------------------------------------- bad input
GOOD = b"1,2,3,4,5,6,7,8\r\n"


@pytest.mark.parametrize("body, problem", [
    (GOOD * 2 + b"1,2,3,4,5,6,7\r\n" + GOOD, r"row 3 has 7 columns, expected 8"),
    (GOOD + b"1,2,abc,4,5,6,7,8\r\n", r"non-numeric value 'abc' in row 2, column 3"),
    (GOOD * 4 + b"1,2,3,4.5,5,6,7,8\r\n", r"non-integer value '4.5' in row 5, column 4"),
    (GOOD + b"\r\n" + GOOD, r"row 2 is empty"),
    (b"1,2,3,4,5,6,7\r\n" * 3, r"row 1 has 7 columns"),
    (b"", r"empty file"),
    (GOOD + "1,2,3,4,5,6,7,\u00e9\r\n".encode("latin-1"), r"not ASCII"),
], ids=["seven_columns", "non_numeric", "non_integer", "empty_row", "all_rows_short",
        "empty_file", "not_ascii"])
def test_parse_csv_rejects_bad_rows(body, problem):
  with pytest.raises(emg_common.CorpusError, match=problem) as info:
    md.parse_csv(body, "S1/day1/R_0_C_0_EMG.csv")
  assert "S1/day1/R_0_C_0_EMG.csv" in str(info.value)


def test_parse_csv_reads_real_format():
  table = md.parse_csv(b"0,-2,-1,1,-1,0,0,-1\r\n127,-128,3,0,0,0,0,9\r\n", "x.csv")
  assert table.dtype == np.int64 and table.shape == (2, 8)
  assert table[1].tolist() == [127, -128, 3, 0, 0, 0, 0, 9]


def _manual_copy(tmp_path: Path) -> Path:
  manual = tmp_path / "manual"
  shutil.copytree(DUMMY_ROOT, manual / md.ROOT)
  return manual


def _replace_row(path: Path, row: int, text: bytes) -> None:
  lines = path.read_bytes().split(b"\r\n")
  lines[row - 1] = text
  path.write_bytes(b"\r\n".join(lines))


@pytest.mark.parametrize("damage, problem, mentions", [
    (lambda m: _replace_row(m / "S10/day2/R_17_C_7_EMG.csv", 57, b"1,2,3,4,5,6,7"),
     r"row 57 has 7 columns", "R_17_C_7_EMG.csv"),
    (lambda m: _replace_row(m / "S4/day1/R_17_C_8_EMG.csv", 300, b"1,2,3,x,5,6,7,8"),
     r"non-numeric value 'x' in row 300", "S4/day1/R_17_C_8_EMG.csv"),
    (lambda m: _replace_row(m / "S5/day2/R_0_C_4_EMG.csv", 10, b"1,2,3,4,5,6,7,130"),
     r"value 130 at sample 9, channel 7 is outside", "R_0_C_4_EMG.csv"),
    (lambda m: shutil.rmtree(m / "S5/positions/3"), r"is missing or holds no recording",
     "S5/positions/3"),
    (lambda m: [p.unlink() for p in (m / "S4/day2").glob("*.csv")],
     r"is missing or holds no recording", "S4/day2"),
    (lambda m: (m / "S1/day1/R_2_C_10_EMG.csv").write_bytes(GOOD * 300),
     r"class 10 is not one of 0..9", "R_2_C_10_EMG.csv"),
    (lambda m: (m / "S1/day1/extra.csv").write_bytes(GOOD * 300), r"unexpected CSV",
     "S1/day1/extra.csv"),
    (lambda m: (m / "S1/day1/R_016_C_1_EMG.csv").write_bytes(GOOD * 300), r"unexpected CSV",
     "S1/day1/R_016_C_1_EMG.csv"),    # would repeat the key of R_16_C_1
    (lambda m: (m / "S5/day1/metadata.json").write_text(
        (m / "S5/day1/metadata.json").read_text().replace('"rep_idx": 15', '"rep_idx": 14')),
     r"R_15_C_9_EMG.csv is listed with rep_idx 14", "S5/day1/metadata.json"),
    (lambda m: (m / "S10/day1/metadata.json").write_text('{"continuous": fal'),
     r"not readable JSON", "S10/day1/metadata.json"),
], ids=["wrong_column_count", "non_numeric", "out_of_range", "missing_folder", "empty_folder",
        "class_10", "stray_csv", "zero_padded_rep", "metadata_contradicts_name",
        "broken_metadata"])
def test_bad_files_fail_the_build_and_leave_nothing(tmp_path, damage, problem, mentions):
  manual = _manual_copy(tmp_path)
  damage(manual / md.ROOT)
  testing.assert_build_fails("myodisco", manual, tmp_path / "tfds", problem, mentions)


def test_truncated_archive_fails_the_build(tmp_path):
  archive = _pack(DUMMY_DIR, tmp_path / md.ARCHIVE_NAMES[0])
  data = archive.read_bytes()
  manual = tmp_path / "manual"
  manual.mkdir()
  (manual / archive.name).write_bytes(data[:len(data) * 2 // 3])
  testing.assert_build_fails("myodisco", manual, tmp_path / "tfds",
                             r"truncated or corrupt archive", md.ARCHIVE_NAMES[0])


def test_missing_or_empty_manual_dir(tmp_path):
  with pytest.raises(emg_common.CorpusError, match="does not exist"):
    md.survey(tmp_path / "nowhere")
  with pytest.raises(emg_common.CorpusError, match=f"manual_dir {tmp_path} holds neither"):
    md.survey(tmp_path)
  (tmp_path / md.ROOT / "S1" / "day1").mkdir(parents=True)
  (tmp_path / md.ROOT / "S1" / "day1" / "metadata.json").write_text("{}")
  with pytest.raises(emg_common.CorpusError, match="holds no MyoDisCo recording"):
    md.survey(tmp_path)


def test_duplicate_member_in_archive(tmp_path):
  archive = _pack(DUMMY_DIR, tmp_path / md.ARCHIVE_NAMES[0], shuffle_seed=None)
  member = DUMMY_ROOT / "S4/day1/R_5_C_7_EMG.csv"
  with tarfile.open(tmp_path / "x.tar", "w") as tar:
    with tarfile.open(archive, "r:xz") as old:
      for info in old:
        tar.addfile(info, old.extractfile(info) if info.isfile() else None)
    tar.add(member, f"{md.ROOT}/S4/day1/R_5_C_7_EMG.csv")
  with tarfile.open(tmp_path / "x.tar") as tar, tarfile.open(archive, "w:xz") as out:
    for info in tar:
      out.addfile(info, tar.extractfile(info) if info.isfile() else None)
  with pytest.raises(emg_common.CorpusError, match="R_5_C_7_EMG.csv is there 2 times"):
    md.survey(tmp_path)


# ----------------------------------------------------------------------------- real data
# A full labeled build of the real copy takes ~40 s on 2 cores, so the builds below read a subset
# of REAL files: people S1, S4, S10 (the folders with metadata quirks), extracted from the
# archive into the unpacked layout. Listing and counts of the whole copy come from the archive.
SUBSET = ("S1/", "S4/", "S10/")


@pytest.fixture(scope="module")
def real_copy(tmp_path_factory):
  """({path below MyoDisCo/: row count} of every real CSV, unpacked subset folder)."""
  testing.need_shared(REAL_ARCHIVE)
  subset = tmp_path_factory.mktemp("real_subset")
  rows = {}
  with tarfile.open(REAL_ARCHIVE, "r:xz") as tar:
    for info in tar:
      if not info.isfile():
        continue
      relative = info.name.split("/", 1)[1]
      data = tar.extractfile(info).read()
      if relative.endswith(".csv"):
        rows[relative] = data.count(b"\n")
      if relative.startswith(SUBSET):
        (subset / md.ROOT / relative).parent.mkdir(parents=True, exist_ok=True)
        (subset / md.ROOT / relative).write_bytes(data)
  return rows, subset


@pytest.fixture(scope="module")
def real_build(real_copy, tmp_path_factory):
  rows, subset = real_copy
  subset_rows = {p: n for p, n in rows.items() if p.startswith(SUBSET)}
  return subset_rows, testing.build_and_read("myodisco", subset, tmp_path_factory.mktemp("real"),
                                             config="cross_day")[1]


def test_real_layout_file_and_window_counts_per_protocol(real_copy, caplog):
  rows, _ = real_copy
  assert len(rows) == 8400
  assert min(rows.values()) == 352 and max(rows.values()) == 426
  assert sum(rows.values()) / 200 / 3600 == pytest.approx(4.70, abs=0.005)   # hours
  with caplog.at_level(logging.WARNING, logger=LOGGER):
    recordings = md.survey(SHARED_MYODISCO)
  assert len(recordings) == 8400 and {r.subject for r in recordings} == set(range(1, 15))
  per_folder = collections.Counter((r.subject, r.session) for r in recordings)
  assert len(per_folder) == 14 * 6
  assert all(n == (200 if session <= 2 else 50) for (_, session), n in per_folder.items())
  assert {r.repetition for r in recordings if r.session > 10} == set(range(5))
  assert "missing in 1 folder(s) ['S1/day2']; 1 folder(s) ['S4/day1']" in caplog.text
  assert "20 listed file(s) absent" in caplog.text
  files = {p: {s: len(items) for s, items in md.group_by_split(recordings, p).items()}
           for p in md.PROTOCOLS}
  assert files == {"cross_day": {"train": 2240, "validation": 560, "test": 2800},
                   "limb_position": {"train": 2240, "validation": 560, "test": 2800},
                   "all": {"train": 7800, "validation": 600}}
  people = {s: {r.subject for r in items}
            for s, items in md.group_by_split(recordings, "all").items()}
  assert people == {"train": set(range(1, 15)) - {5}, "validation": {5}}
  # Windows of the full builds (README), from row counts alone.
  windows = {p: collections.Counter() for p in md.PROTOCOLS}
  for protocol, stride in (("cross_day", 50), ("limb_position", 50), ("all", 100)):
    for key, n in _expected(rows, protocol, stride).items():
      windows[protocol][key[0]] += n
  assert windows == {"cross_day": {"train": 11096, "validation": 2777, "test": 13893},
                     "limb_position": {"train": 11113, "validation": 2780, "test": 13915},
                     "all": {"train": 23099, "validation": 1782}}


def test_real_subset_cross_day_counts(real_build):
  rows, records = real_build
  assert testing.split_sizes(records) == {"train": 2351, "validation": 589, "test": 2973}
  assert _got(records) == _expected(rows, "cross_day", 50)
  for split in SPLITS:
    assert set(int(r["label"]) for r in records[split]) == set(range(10))
  assert testing.ids_by_split(records) == {s: {1, 4, 10} for s in SPLITS}
  assert testing.ids_by_split(records, "session") == {"train": {1}, "validation": {1},
                                                      "test": {2}}


def test_real_values_finite_and_in_myo_units(real_build):
  _, records = real_build
  for split in SPLITS:
    emg = np.stack([r["emg"] for r in records[split]])
    assert np.isfinite(emg).all()
    assert 2.0 < emg.std() < 40.0 and np.abs(emg).max() < 400.0
    assert np.abs(emg.mean(axis=-1)).mean() < 1.0     # the band-pass leaves no offset
  # z_rest is the quietest class, on both days.
  for split in ("train", "test"):
    rms = collections.defaultdict(list)
    for r in records[split]:
      rms[int(r["label"])].append(float(np.sqrt(np.mean(r["emg"] ** 2))))
    means = {k: np.mean(v) for k, v in rms.items()}
    assert min(means, key=means.get) == md.CLASS_NAMES.index("z_rest")


def test_real_window_matches_reference(real_build, real_copy):
  _, records = real_build
  _, subset = real_copy
  raw = np.loadtxt(subset / md.ROOT / "S4/day1/R_3_C_7_EMG.csv", delimiter=",")
  filtered = testing.reference_filter(raw.T, 200, (20, 90), 50)
  got = [r["emg"] for r in records["train"] if (r["subject"], r["session"], r["repetition"],
                                               r["label"]) == (4, 1, 3, 7)]
  starts = range(0, raw.shape[0] - 199, 50)
  assert len(got) == len(starts)
  for start in starts:
    want = filtered[:, start:start + 200]
    assert sum(np.allclose(g, want, atol=1e-4, rtol=1e-5) for g in got) == 1


def test_real_subset_limb_position(real_copy, tmp_path):
  rows, subset = real_copy
  only_s4 = tmp_path / "s4"
  shutil.copytree(subset / md.ROOT / "S4", only_s4 / md.ROOT / "S4")
  _, records = testing.build_and_read("myodisco", only_s4, tmp_path / "tfds",
                                      config="limb_position")
  s4_rows = {p: n for p, n in rows.items() if p.startswith("S4/")}
  assert testing.split_sizes(records) == {"train": 794, "validation": 198, "test": 993}
  assert _got(records) == _expected(s4_rows, "limb_position", 50)
  assert testing.ids_by_split(records, "session")["test"] == {11, 12, 13, 14}
