"""Tests of the myo_readings builder: dummy data (exact counts, values), quirks, bad input, real."""

from __future__ import annotations

import collections
import importlib.util
import logging
import re
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest

from data_builders import emg_common, myo_common, registry, testing
from data_builders.myo_readings import myo_readings_dataset_builder as myo

HERE = Path(__file__).resolve().parent
DUMMY_DIR = HERE / "dummy_data"
DUMMY_ROOT = DUMMY_DIR / myo.ROOT
SHARED = testing.SHARED_DATA / "myo_readings"
SPLITS = testing.SPLITS
ALL_SPLITS = ("train", "validation")
LINE_RE = re.compile(r"-?\d+(?:, ?-?\d+){8}")
BAND, NOTCH = (20.0, 90.0), 50.0

_spec = importlib.util.spec_from_file_location("make_dummy_data", DUMMY_DIR / "make_dummy_data.py")
make_dummy = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_dummy)


# ----------------------------------------------------------------------------- reference
def _reference_pieces(path: Path) -> list[tuple[np.ndarray, np.ndarray]]:
  """Independent reader: (1-based line numbers, int rows [T, 9]) of each run of good lines."""
  pieces, lines, rows = [], [], []
  for number, line in enumerate(path.read_bytes().decode("ascii").splitlines(), start=1):
    if LINE_RE.fullmatch(line):
      lines.append(number)
      rows.append([int(v) for v in line.split(",")])
    elif rows:
      pieces.append((np.array(lines), np.array(rows)))
      lines, rows = [], []
  if rows:
    pieces.append((np.array(lines), np.array(rows)))
  return pieces


def _reference_windows(root: Path, all_windows: bool) -> list[dict]:
  """Every window the builder should write, from the raw files with scipy's filters.

  Labeled: inside each piece, each stretch of one label that is the file's own gets windows
  every 50 rows from the stretch's start. `all`: windows every 100 rows from each piece's start,
  labeled when all 200 labels are equal. Repetition counts the label's runs in the whole file.
  """
  out = []
  for path in sorted(root.glob("_readings_*_hand/*-*/*.txt")):
    participant, session = (int(v) for v in path.parent.name.split("-"))
    gesture = int(path.stem)
    pieces = _reference_pieces(path)
    labels = np.concatenate([rows[:, 8] for _, rows in pieces])
    new_run = np.r_[True, labels[1:] != labels[:-1]]
    repetition = np.zeros(labels.size, int)
    for label in set(labels.tolist()):
      repetition[labels == label] = np.cumsum(new_run & (labels == label))[labels == label]
    offset = 0
    for lines, rows in pieces:
      size = len(rows)
      if size >= 200:
        emg = testing.reference_filter(rows[:, :8].T, 200.0, BAND, NOTCH)
      if all_windows:
        starts = list(range(0, size - 199, 100))
      else:
        change = np.r_[True, rows[1:, 8] != rows[:-1, 8]]
        stretch_start = np.maximum.accumulate(np.where(change, np.arange(size), 0))
        starts = [s for s in range(size - 199) if rows[s, 8] == gesture
                  and (s - stretch_start[s]) % 50 == 0 and (rows[s:s + 200, 8] == gesture).all()]
      for s in starts:
        one_label = bool((rows[s:s + 200, 8] == rows[s, 8]).all())
        out.append({"emg": emg[:, s:s + 200], "subject": participant, "session": session,
                    "label": int(rows[s, 8]) if one_label else len(myo.CLASS_NAMES),
                    "repetition": int(repetition[offset + s]) if one_label else 0,
                    "line": int(lines[s])})
      offset += size
  return out


def _split_of(participant: int, all_windows: bool) -> str:
  return (myo_common.all_split(str(participant)) if all_windows else
          emg_common.hashed_subject_split(str(participant), validation_percent=15,
                                          test_percent=15))


def _assert_match_reference(records: testing.Records, reference: list[dict],
                            all_windows: bool) -> None:
  """Every record equals one reference window (ids, label, values) and vice versa."""
  groups = collections.defaultdict(list)
  for ref in reference:
    split = _split_of(ref["subject"], all_windows)
    groups[(split, ref["subject"], ref["session"], ref["label"], ref["repetition"])].append(ref)
  for split, items in records.items():
    for record in items:
      key = (split, int(record["subject"]), int(record["session"]), int(record["label"]),
             int(record["repetition"]))
      candidates = groups.get(key, [])
      assert candidates, f"no reference window for {key}"
      errors = [np.abs(record["emg"] - c["emg"]).max() for c in candidates]
      best = int(np.argmin(errors))
      assert errors[best] < 1e-3, (key, errors[best])
      candidates.pop(best)
  assert not any(groups.values()), "reference windows that were not written"


# ----------------------------------------------------------------------------- dummy data
# default config, hand-counted from make_dummy_data's run lengths (2 windows per 250-row run,
# 1 per 200-row run, 2 from each 250-row 0.txt) and its malformed lines (50505-2, test split).
DUMMY_DEFAULT_SIZES = {"train": 18, "validation": 36, "test": 16}
CLEAN_SESSION_CLASSES = {0: 2, 1: 3, 2: 3, 3: 2, 4: 2, 5: 2, 6: 2, 7: 2}
DUMMY_TEST_CLASSES = {0: 2, 1: 3, 2: 2, 3: 2, 4: 1, 5: 2, 6: 2, 7: 2}


@pytest.fixture(scope="module")
def dummy_default(tmp_path_factory):
  return testing.build_and_read("myo_readings", DUMMY_DIR, tmp_path_factory.mktemp("tfds"))


@pytest.fixture(scope="module")
def dummy_all(tmp_path_factory):
  data_dir = tmp_path_factory.mktemp("tfds_all")
  builder = testing.build_lib.build("myo_readings", manual_dir=DUMMY_DIR, data_dir=data_dir,
                                    config="all")
  return builder, testing.read_splits("myo_readings", data_dir, "all", ALL_SPLITS)


def test_dummy_default_counts_per_split_class_session(dummy_default):
  builder, records = dummy_default
  assert testing.split_sizes(records) == DUMMY_DEFAULT_SIZES
  assert {s: builder.info.splits[s].num_examples for s in SPLITS} == DUMMY_DEFAULT_SIZES
  labels = {s: dict(collections.Counter(int(r["label"]) for r in items))
            for s, items in records.items()}
  assert labels == {"train": CLEAN_SESSION_CLASSES,
                    "validation": {k: 2 * v for k, v in CLEAN_SESSION_CLASSES.items()},
                    "test": DUMMY_TEST_CLASSES}
  sessions = {s: dict(collections.Counter((int(r["subject"]), int(r["session"])) for r in items))
              for s, items in records.items()}
  assert sessions == {"train": {(6666, 1): 18}, "validation": {(11111, 0): 18, (11111, 1): 18},
                      "test": {(50505, 2): 16}}
  # Repetition 2 = the second gesture run of 1.txt and 2.txt (the only ones long enough).
  second = {(int(r["subject"]), int(r["session"]), int(r["label"]))
            for s in SPLITS for r in records[s] if r["repetition"] == 2}
  assert second == {(p, q, k) for p, q in [(6666, 1), (11111, 0), (11111, 1), (50505, 2)]
                    for k in (1, 2)}
  assert {int(r["repetition"]) for s in SPLITS for r in records[s]} == {1, 2}


def test_dummy_features_and_metadata(dummy_default):
  builder, records = dummy_default
  assert dict(builder.info.metadata) == {"sample_rate_hz": 200.0, "num_channels": 8,
                                         "window": 200, "stride": 50}
  assert builder.info.features["label"].names == [
      "hibernation", "flexion", "extension", "radial_deviation", "ulnar_deviation", "pronation",
      "supination", "fist"]
  assert builder.info.supervised_keys == ("emg", "label")
  assert set(builder.info.features) == {"emg", "label", "subject", "session", "repetition"}
  for record in records["train"]:
    assert record["emg"].shape == (8, 200) and record["emg"].dtype == np.float32
  emg = np.stack([r["emg"] for s in SPLITS for r in records[s]])
  # The raw samples are -1..7 (mean 3): the band-pass leaves no offset but keeps the noise.
  assert abs(emg.mean()) < 0.2 and 1.0 < emg.std() < 4.0


def test_dummy_default_values_match_reference(dummy_default):
  _, records = dummy_default
  reference = _reference_windows(DUMMY_ROOT, all_windows=False)
  assert len(reference) == sum(DUMMY_DEFAULT_SIZES.values())
  _assert_match_reference(records, reference, all_windows=False)


def test_dummy_splits_follow_the_id_hash(dummy_default):
  _, records = dummy_default
  assert testing.assert_subject_disjoint(records) == {"train": {6666}, "validation": {11111},
                                                      "test": {50505}}
  for participant, split in [(6666, "train"), (11111, "validation"), (50505, "test")]:
    assert emg_common.hashed_subject_split(str(participant), validation_percent=15,
                                           test_percent=15) == split


def test_split_does_not_depend_on_who_else_is_present(tmp_path):
  root = tmp_path / myo.ROOT
  shutil.copytree(DUMMY_ROOT / "_readings_right_hand" / "11111-1",
                  root / "_readings_right_hand" / "11111-1")
  (root / "_readings_left_hand").mkdir()
  sessions = myo.list_sessions(tmp_path)
  assert [(s.subject, s.session, s.split(False), s.split(True)) for s in sessions] == [
      (11111, 1, "validation", "train")]


def test_all_config_counts_labels_and_values(dummy_all):
  builder, records = dummy_all
  reference = _reference_windows(DUMMY_ROOT, all_windows=True)
  assert builder.info.features["label"].names[-1] == myo_common.UNLABELED
  assert len(builder.info.features["label"].names) == 9
  assert dict(builder.info.metadata)["stride"] == 100
  assert set(builder.info.splits) == set(ALL_SPLITS)
  expected = collections.Counter(myo_common.all_split(str(r["subject"])) for r in reference)
  assert testing.split_sizes(records) == dict(expected) == {"train": 71, "validation": 19}
  assert testing.assert_subject_disjoint(records) == {"train": {6666, 11111},
                                                      "validation": {50505}}
  labels = collections.Counter(int(r["label"]) for s in ALL_SPLITS for r in records[s])
  # One labeled window per 0.txt and per clean gesture file (start 100 lies inside rows 50-300).
  # In 50505-2, 3.txt and 7.txt lose theirs (the windows restart after the dropped lines, off
  # the grid) and 4.txt's first piece ends at row 280; 2.txt keeps one, starting at row 62.
  assert labels == {0: 4, 1: 4, 2: 4, 3: 3, 4: 3, 5: 4, 6: 4, 7: 3, 8: 90 - 29}
  for split in ALL_SPLITS:
    assert all(int(r["repetition"]) == 0 for r in records[split] if int(r["label"]) == 8)
    assert all(int(r["repetition"]) == 1 for r in records[split] if int(r["label"]) < 8)
  _assert_match_reference(records, reference, all_windows=True)


def test_archive_and_unpacked_folder_give_identical_records(tmp_path, dummy_default):
  archive = tmp_path / "manual" / myo.ARCHIVE_NAME
  archive.parent.mkdir()
  with tarfile.open(archive, "w:xz") as tar:
    tar.add(DUMMY_ROOT, arcname=myo.ROOT)
  assert myo.list_sessions(archive.parent) == myo.list_sessions(DUMMY_DIR)
  assert myo.list_sessions(DUMMY_ROOT) == myo.list_sessions(DUMMY_DIR)
  _, from_archive = testing.build_and_read("myo_readings", archive.parent, tmp_path / "tfds")
  testing.assert_same_records(dummy_default[1], from_archive)


def test_layout_quirks_session_zero_four_digit_id_left_hand():
  sessions = myo.list_sessions(DUMMY_DIR)
  assert [(s.hand, s.participant, s.subject, s.session, s.folder) for s in sessions] == [
      ("left", "6666", 6666, 1, "_readings_left_hand/6666-1"),
      ("right", "11111", 11111, 0, "_readings_right_hand/11111-0"),
      ("right", "11111", 11111, 1, "_readings_right_hand/11111-1"),
      ("right", "50505", 50505, 2, "_readings_right_hand/50505-2")]


def test_crlf_spaces_and_final_line_break_parse_like_plain_lines():
  for folder, marker in [("_readings_right_hand/11111-0", b"\r\n"),
                         ("_readings_left_hand/6666-1", b", ")]:
    for gesture in range(8):
      data = (DUMMY_ROOT / folder / f"{gesture}.txt").read_bytes()
      assert marker in data
      plain = data.replace(b"\r\n", b"\n").replace(b", ", b",").rstrip(b"\n")
      parsed = myo.parse_recording(data, "x", gesture)
      np.testing.assert_array_equal(parsed.rows, myo.parse_recording(plain, "x", gesture).rows)
      np.testing.assert_array_equal(parsed.rows, _reference_pieces(DUMMY_ROOT / folder /
                                                                   f"{gesture}.txt")[0][1])
      assert parsed.dropped == () and parsed.pieces() == [(0, len(parsed.rows))]
  endings = {p.read_bytes().endswith(b"\n") for p in DUMMY_ROOT.glob("_readings_*/*/*.txt")}
  assert endings == {True, False}
  lengths = {len(myo.parse_recording(p.read_bytes(), "x", int(p.stem)).rows)
             for p in DUMMY_ROOT.glob("_readings_*/*/[1-7].txt")}
  assert len(lengths) > 10   # ragged: the rest tail differs from file to file


def test_extreme_int8_values_are_accepted():
  parsed = myo.parse_recording((DUMMY_ROOT / "_readings_right_hand/11111-1/3.txt").read_bytes(),
                               "x", 3)
  assert parsed.rows[100, :2].tolist() == [-128, 127]


# (file of 50505-2, dropped line numbers, clean rows lost) as make_dummy_data writes them.
MALFORMED = [(1, (313,), (312,)), (2, (61,), (60, 61)), (3, (46, 47), (45, 46)),
             (4, (281, 282), (280, 281)), (7, (21, 22), (20, 21))]


@pytest.mark.parametrize("gesture, dropped, lost", MALFORMED)
def test_malformed_lines_are_dropped_without_shifting_labels(gesture, dropped, lost):
  path = DUMMY_ROOT / "_readings_right_hand" / "50505-2" / f"{gesture}.txt"
  parsed = myo.parse_recording(path.read_bytes(), path.name, gesture)
  assert parsed.dropped == dropped
  # The kept labels are the clean timeline minus the lost rows: nothing shifted.
  tail = 3 + 5 * gesture + 3 * 2
  clean = np.delete(make_dummy.timeline(gesture, tail), lost)
  np.testing.assert_array_equal(parsed.rows[:, 8], clean)
  assert parsed.pieces() == [(0, lost[0]), (lost[0], len(clean))]
  ref = _reference_pieces(path)
  assert [len(rows) for _, rows in ref] == [lost[0], len(clean) - lost[0]]
  np.testing.assert_array_equal(parsed.rows, np.concatenate([rows for _, rows in ref]))


def test_no_window_spans_a_dropped_line():
  folder = DUMMY_ROOT / "_readings_right_hand" / "50505-2"
  session = myo.Session("right", "50505", 2, "_readings_right_hand/50505-2")
  config = myo.Builder.BUILDER_CONFIGS[0]
  starts = {}
  for gesture in (2, 3, 4):
    parsed = myo.parse_recording((folder / f"{gesture}.txt").read_bytes(), "x", gesture)
    starts[gesture] = [int(key.rsplit("_", 1)[1]) for key, _ in
                       myo.recording_examples(parsed, session, gesture, "x", config)]
  # 2.txt: line 61 joins rows 60-61, so the first gesture run restarts at line 62 (one window
  # instead of two); its second run (rows 320-519) is untouched. 3.txt: the drop is in the rest
  # before the gesture, whose windows stay at the run start (line 51 = row 50, after 2 lines
  # replaced 2 rows). 4.txt: lines 281-282 cut the run after 230 rows: one window.
  assert starts == {2: [62, 320], 3: [51, 101], 4: [51]}


def test_dropped_lines_are_counted_in_the_build_log(tmp_path, caplog):
  with caplog.at_level(logging.INFO, logger=myo.__name__):
    testing.build_lib.build("myo_readings", manual_dir=DUMMY_DIR, data_dir=tmp_path)
  summary = [r.getMessage() for r in caplog.records if "malformed line(s) in" in r.getMessage()]
  assert sorted(summary) == [
      "myo_readings/default test: dropped 8 malformed line(s) in 5 file(s) of 8",
      "myo_readings/default train: dropped 0 malformed line(s) in 0 file(s) of 8",
      "myo_readings/default validation: dropped 0 malformed line(s) in 0 file(s) of 16"]
  per_file = [r.getMessage() for r in caplog.records if "the recording is split" in r.getMessage()]
  assert len(per_file) == 5 and any("50505-2/1.txt: dropped malformed line(s) 313;" in m
                                    for m in per_file)


# ----------------------------------------------------------------------------- bad input
GOOD = "1,2,3,4,5,6,7,8,0"


def _lines(n: int, line: str = GOOD) -> bytes:
  return ("\n".join([line] * n)).encode()


@pytest.mark.parametrize("data, problem", [
    (b"", "empty file"),
    (b"\r\n", "empty file"),
    (_lines(300, "1,2,3,4,5,6,7,8,0,0"), r"300 of 300 lines are not 9 comma-separated integers.*"
                                          r"line 1 \(10 fields, expected 9\)"),
    (_lines(300, "a,b,c,d,e,f,g,h,0"), r"300 of 300 lines .*field 'a' is not an integer"),
    (_lines(300, "1.5,2,3,4,5,6,7,8,0"), r"field '1.5' is not an integer"),
    (_lines(200) + b"\n" + b"\n".join([b"1,2"] * 11), "11 of 211 lines"),
    (_lines(200) + b"\n1,2,3,4,5,6,7,8,9", "label 9 on line 201 is outside 0..7"),
    (_lines(200) + b"\n1,2,3,4,5,6,7,8,-1", "label -1 on line 201 is outside 0..7"),
    (_lines(200) + b"\n1,2,3,4,5,6,7,8,3", r"label 3 on line 201 does not belong in 2.txt"),
    (_lines(200) + b"\n1,2,3,4,200,6,7,8,0", r"sample 200 on line 201 \(channel e5\) is outside"),
])
def test_parse_rejects_bad_files(data, problem):
  with pytest.raises(emg_common.CorpusError, match=problem) as info:
    myo.parse_recording(data, "12345-1/2.txt", 2)
  assert str(info.value).startswith("12345-1/2.txt: ")


def test_up_to_ten_malformed_lines_are_tolerated():
  data = b"\n".join([_lines(50)] + [b"1,2", _lines(50)] * 10)
  parsed = myo.parse_recording(data, "x", 2)
  assert len(parsed.dropped) == 10 and len(parsed.pieces()) == 11 and len(parsed.rows) == 550


def _copy_dummy(tmp_path: Path) -> Path:
  root = tmp_path / "manual" / myo.ROOT
  shutil.copytree(DUMMY_ROOT, root)
  return root


@pytest.mark.parametrize("change, problem, mentions", [
    (lambda r: shutil.rmtree(r / "_readings_left_hand/6666-1")
     or (r / "_readings_left_hand/6666-1").mkdir(), "is empty", "_readings_left_hand/6666-1"),
    (lambda r: (r / "_readings_right_hand/11111-1/5.txt").unlink(), "lacks 5.txt",
     "_readings_right_hand/11111-1"),
    (lambda r: (r / "_readings_right_hand/11111-1/8.txt").write_text(GOOD),
     "unexpected file.*8.txt", "_readings_right_hand/11111-1"),
    (lambda r: (r / "_readings_right_hand/11111-1").rename(r / "_readings_right_hand/11111_1"),
     "not named <id>-<session>", "_readings_right_hand/11111_1"),
    (lambda r: shutil.copytree(r / "_readings_left_hand/6666-1",
                               r / "_readings_right_hand/6666-1"),
     "same participant and session", "_readings_right_hand/6666-1"),
    (lambda r: shutil.rmtree(r / "_readings_left_hand"), "is missing", "_readings_left_hand/"),
    (lambda r: (r / "_readings_right_hand/notes.txt").write_text("x"), "unexpected file",
     "_readings_right_hand/notes.txt"),
])
def test_layout_errors_fail_the_build(tmp_path, change, problem, mentions):
  root = _copy_dummy(tmp_path)
  change(root)
  testing.assert_build_fails("myo_readings", root.parent, tmp_path / "tfds", problem, mentions)


def test_hidden_files_and_top_level_files_are_ignored(tmp_path):
  root = _copy_dummy(tmp_path)
  (root / "_readings_right_hand/11111-1/.DS_Store").write_bytes(b"\0")
  (root / "notes.txt").write_text("not a recording")
  assert myo.list_sessions(root.parent) == myo.list_sessions(DUMMY_DIR)


@pytest.mark.parametrize("body, problem", [
    (_lines(300, "1,2,3,4,5,6,7,8,0,0"), "lines are not 9 comma-separated integers"),
    (_lines(300).replace(b",0", b",9"), "label 9 on line 1 is outside 0..7"),
])
def test_bad_file_fails_the_build_and_leaves_nothing_readable(tmp_path, body, problem):
  root = _copy_dummy(tmp_path)
  bad = root / "_readings_right_hand" / "50505-2" / "6.txt"
  bad.write_bytes(body)
  testing.assert_build_fails("myo_readings", root.parent, tmp_path / "tfds", problem,
                             "50505-2/6.txt")
  with pytest.raises(registry.DatasetNotBuiltError, match="python -m data_builders.build"):
    registry.load_split("myo_readings", "train", data_dir=tmp_path / "tfds")


def test_truncated_archive_fails_naming_it(tmp_path):
  archive = tmp_path / "manual" / myo.ARCHIVE_NAME
  archive.parent.mkdir()
  with tarfile.open(archive, "w:xz") as tar:
    tar.add(DUMMY_ROOT, arcname=myo.ROOT)
  archive.write_bytes(archive.read_bytes()[:20_000])
  testing.assert_build_fails("myo_readings", archive.parent, tmp_path / "tfds",
                             "truncated or corrupt archive", myo.ARCHIVE_NAME)


def test_missing_or_empty_manual_dir(tmp_path):
  with pytest.raises(emg_common.CorpusError, match="does not exist"):
    myo.list_sessions(tmp_path / "nowhere")
  with pytest.raises(emg_common.CorpusError, match="no _readings_right_hand or "
                                                   "_readings_left_hand folder"):
    myo.list_sessions(tmp_path)
  testing.assert_build_fails("myo_readings", tmp_path, tmp_path / "tfds", "no _readings_right",
                             str(tmp_path))


# ----------------------------------------------------------------------------- real data
# Real session folders the real-data build uses: every malformed line, a CRLF + ", " session,
# the four-digit left-hand id, and people of all three splits.
REAL_SESSIONS = ("_readings_right_hand/19999-2", "_readings_right_hand/64917-1",
                 "_readings_right_hand/64917-2", "_readings_right_hand/64917-3",
                 "_readings_right_hand/35622-1", "_readings_left_hand/6666-1")


@pytest.fixture(scope="module")
def real_subset(tmp_path_factory):
  """Extracts REAL_SESSIONS from the real archive (one pass) and lists every file name seen."""
  archive = SHARED / myo.ARCHIVE_NAME
  testing.need_shared(archive)
  manual = tmp_path_factory.mktemp("real_manual")
  names = []

  def keep(path: str) -> bool:
    names.append(path)
    return path.rsplit("/", 1)[0] in REAL_SESSIONS

  for member in myo_common.iter_members(SHARED, (myo.ARCHIVE_NAME,), myo.ROOT, keep):
    target = manual / myo.ROOT / member.path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(member.data)
  return manual, names


@pytest.fixture(scope="module")
def real_build(real_subset, tmp_path_factory):
  return testing.build_and_read("myo_readings", real_subset[0], tmp_path_factory.mktemp("tfds"))


def test_real_archive_layout_counts(real_subset):
  _, names = real_subset
  recordings = [n for n in names if n.startswith("_readings_")]
  folders = {n.rsplit("/", 1)[0] for n in recordings}
  people = {f.split("/")[1].split("-")[0] for f in folders}
  assert len(recordings) == 792 and len(folders) == 99 and len(people) == 33
  assert sum(f.startswith("_readings_left_hand") for f in folders) == 9   # 3 people x 3
  assert {n.rsplit("/", 1)[1] for n in recordings} == set(myo.FILE_NAMES)
  assert sorted(n for n in names if not n.startswith("_readings_")) == [
      "LICENSE", "README.md", "curated.txt"]


def test_real_subset_counts_and_splits(real_build):
  records = real_build[1]
  assert testing.assert_subject_disjoint(records) == {
      "train": {6666, 19999}, "validation": {35622}, "test": {64917}}
  sizes = testing.split_sizes(records)
  assert sizes == {"train": 1822, "validation": 951, "test": 2823}
  sessions = collections.Counter((int(r["subject"]), int(r["session"]))
                                 for s in SPLITS for r in records[s])
  assert set(sessions) == {(19999, 2), (64917, 1), (64917, 2), (64917, 3), (35622, 1),
                           (6666, 1)}
  labels = collections.Counter(int(r["label"]) for s in SPLITS for r in records[s])
  # 0.txt holds ~12,000 rest rows (~237 windows); a gesture file ~6 runs of ~17 windows each.
  assert labels == {0: 1429, 1: 596, 2: 609, 3: 578, 4: 602, 5: 605, 6: 588, 7: 589}
  validation = collections.Counter(int(r["label"]) for r in records["validation"])
  assert validation == {0: 237, **{k: 102 for k in range(1, 8)}}   # 35622-1: 6 runs x 17
  repetitions = collections.Counter(int(r["repetition"]) for s in SPLITS for r in records[s])
  assert repetitions == {1: 2117, 2: 694, 3: 694, 4: 693, 5: 685, 6: 675, 7: 38}


def test_real_subset_counts_match_an_independent_count(real_subset, real_build):
  """Windows per session and class from the raw lines alone (split at malformed lines)."""
  manual, _ = real_subset
  expected = collections.Counter()
  for folder in REAL_SESSIONS:
    participant, session = folder.split("/")[1].split("-")
    for gesture in range(8):
      text = (manual / myo.ROOT / folder / f"{gesture}.txt").read_bytes().decode()
      good = [LINE_RE.fullmatch(line) is not None for line in text.splitlines()]
      labels = [int(line.rsplit(",", 1)[1]) if ok else -1
                for line, ok in zip(text.splitlines(), good)]
      run = 0
      for i, label in enumerate(labels + [-1]):
        if i and (label != labels[i - 1] or label == -1):
          if labels[i - 1] == gesture and run >= 200:
            expected[(int(participant), int(session), gesture)] += (run - 200) // 50 + 1
          run = 0
        run += label != -1
  got = collections.Counter((int(r["subject"]), int(r["session"]), int(r["label"]))
                            for s in SPLITS for r in real_build[1][s])
  assert got == expected


def test_real_values_finite_and_in_myo_units(real_build):
  for split in SPLITS:
    emg = np.stack([r["emg"] for r in real_build[1][split]])
    assert np.isfinite(emg).all()
    assert 1.0 < emg.std() < 40.0 and np.abs(emg).max() < 400.0
    assert abs(emg.mean()) < 0.5


def test_real_malformed_lines_are_the_documented_ones(real_subset):
  manual, _ = real_subset
  found = {}
  for folder in REAL_SESSIONS:
    for gesture in range(8):
      path = manual / myo.ROOT / folder / f"{gesture}.txt"
      parsed = myo.parse_recording(path.read_bytes(), str(path), gesture)
      if parsed.dropped:
        found[f"{folder.split('/')[1]}/{gesture}.txt"] = parsed.dropped
  assert found == {"19999-2/2.txt": (12322,), "64917-1/2.txt": (1032, 1033),
                   "64917-2/1.txt": (1998,), "64917-2/4.txt": (346, 347),
                   "64917-3/7.txt": (1347, 1348)}
