"""grain pipeline: normalization, channel padding, mixture, determinism, resumable iterators."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import REPO
from tinymyo_jax import input_pipeline as ip


def records(num, channels, samples, offset=0.0):
  rng = np.random.default_rng(channels)
  return [{"emg": (rng.standard_normal((channels, samples)) * 50 + offset).astype(np.float32),
           "label": i % 3} for i in range(num)]


def test_minmax_maps_each_channel_to_unit_range():
  x = np.stack([np.linspace(-3, 5, 100), np.linspace(10, 20, 100)]).astype(np.float32)
  y = ip.minmax_per_channel(x)
  np.testing.assert_allclose(y.min(axis=1), [-1, -1], atol=1e-6)
  np.testing.assert_allclose(y.max(axis=1), [1, 1], atol=1e-6)


def test_channel_stats_over_windows_and_utterances():
  windows = records(5, 3, 400, offset=7.0)
  x = np.stack([w["emg"] for w in windows]).astype(np.float64)
  stats = ip.channel_stats(windows)
  np.testing.assert_allclose(stats["mean"], x.mean(axis=(0, 2)), rtol=1e-12)
  np.testing.assert_allclose(stats["std"], x.std(axis=(0, 2)), rtol=1e-12)
  # Utterances of different lengths: every sample counts once; a flat channel gets std 1.
  rng = np.random.default_rng(0)
  utts = [{"emg": np.stack([rng.standard_normal(t) * 3 + 1, np.full(t, 2.0)])}
          for t in (50, 0, 700, 130)]
  stats = ip.channel_stats(utts)
  flat = np.concatenate([u["emg"] for u in utts], axis=1)
  np.testing.assert_allclose(stats["mean"], flat.mean(axis=1), rtol=1e-12)
  np.testing.assert_allclose(stats["std"], [flat[0].std(), 1.0], rtol=1e-12)
  assert ip.channel_stats(utts, max_records=2) == ip.channel_stats(utts, max_records=2)
  with pytest.raises(ValueError, match="empty split"):
    ip.channel_stats([])


def test_zscore_and_padding():
  x = records(1, 3, 400)[0]["emg"]
  z = ip.zscore_per_channel(x)
  np.testing.assert_allclose(z.mean(axis=1), 0, atol=1e-5)
  np.testing.assert_allclose(z.std(axis=1), 1, atol=1e-3)
  padded = ip.pad_channels(z, 16)
  assert padded.shape == (16, 400) and not padded[3:].any()
  with pytest.raises(ValueError, match="20 channels, more than the model's 16"):
    ip.pad_channels(np.zeros((20, 10), np.float32), 16)


def test_unknown_normalization_is_an_error():
  with pytest.raises(ValueError, match="unknown normalization 'l2'"):
    ip.PrepareWindow("l2", None, ())


def test_mixture_pads_channels_and_follows_weights():
  sources = [ip.Source("a", weight=3.0), ip.Source("b", weight=1.0)]
  recs = [records(40, 8, 200), records(40, 12, 200, offset=1000.0)]
  ds = ip.make_dataset(sources, "train", data_dir="", batch_size=40, seed=0, train=True,
                       normalization="none", num_channels=16, records=recs)
  batch = next(iter(ds))
  assert batch["emg"].shape == (40, 16, 200)
  from_b = np.abs(batch["emg"][:, :12].mean(axis=(1, 2))) > 500
  assert 5 <= int(from_b.sum()) <= 15  # ~1/4 of the windows come from source b
  assert not batch["emg"][~from_b, 8:].any()  # 8-channel windows are zero-padded


def test_channel_groups_cut_windows_into_consecutive_channels():
  recs = records(3, 16, 50)
  groups = ip.ChannelGroups(recs, 8)
  assert len(groups) == 6
  np.testing.assert_array_equal(groups[3]["emg"], recs[1]["emg"][8:])
  assert groups[3]["label"] == recs[1]["label"]
  with pytest.raises(ValueError, match="channel_group=5 does not divide the windows' 16"):
    ip.ChannelGroups(recs, 5)
  synthetic = ip.load_source(ip.Source("synthetic", "16x100:4", channel_group=8), "train", "")
  assert len(synthetic) == 8 and synthetic[1]["emg"].shape == (8, 100)


def test_training_only_source_joins_training_and_skips_evaluation():
  sources = [ip.Source("a"), ip.Source("b", split="train+validation")]
  recs = [records(20, 8, 100), records(20, 8, 100, offset=1000.0)]
  make = lambda train: ip.make_dataset(sources, "validation", data_dir="", batch_size=20, seed=0,
                                       train=train, normalization="none", records=recs)
  means = next(iter(make(True)))["emg"].mean(axis=(1, 2))
  assert (means > 500).any() and (means < 500).any()
  evaluated = np.concatenate([b["emg"] for b in make(False)])
  assert evaluated.shape[0] == 20 and (evaluated.mean(axis=(1, 2)) < 500).all()
  with pytest.raises(ValueError, match="every source is training-only"):
    ip.make_dataset(sources[1:], "test", data_dir="", batch_size=4, seed=0, train=False,
                    records=recs[1:])


def test_same_seed_same_batches_and_iterator_state_resumes():
  recs = [records(50, 8, 200)]
  make = lambda seed: ip.make_dataset([ip.Source("a")], "train", data_dir="", batch_size=4,
                                      seed=seed, train=True, records=recs)
  a, b = iter(make(1)), iter(make(1))
  for _ in range(3):
    np.testing.assert_array_equal(next(a)["emg"], next(b)["emg"])
  assert not np.array_equal(next(iter(make(2)))["emg"], next(iter(make(1)))["emg"])
  state = a.get_state()
  expected = [next(a)["emg"] for _ in range(3)]
  c = iter(make(1))
  c.set_state(state)
  for e in expected:
    np.testing.assert_array_equal(next(c)["emg"], e)


def test_eval_pass_is_ordered_and_complete():
  recs = [records(10, 8, 200)]
  batches = list(ip.make_dataset([ip.Source("a")], "validation", data_dir="", batch_size=4,
                                 seed=0, train=False, normalization="none", keep=("label",),
                                 records=recs))
  assert [b["emg"].shape[0] for b in batches] == [4, 4, 2]
  np.testing.assert_array_equal(np.concatenate([b["label"] for b in batches]),
                                [i % 3 for i in range(10)])


def test_synthetic_source_is_deterministic():
  a = ip.SyntheticSource("4x100:10:5", "train")
  assert len(a) == 10 and a[3]["emg"].shape == (4, 100) and a[7]["label"] == 2
  np.testing.assert_array_equal(a[3]["emg"], ip.SyntheticSource("4x100:10", "train")[3]["emg"])
  with pytest.raises(ValueError, match="bad synthetic spec"):
    ip.SyntheticSource("4-100", "train")


def test_reads_built_uci_sample(tmp_path, monkeypatch):
  from data_builders.uci_emg import uci_emg_dataset_builder as uci
  import tensorflow_datasets as tfds
  builder = uci.Builder(data_dir=str(tmp_path), file_format="array_record")
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
      manual_dir=str(REPO / "data_builders" / "uci_emg" / "dummy_data")))
  ds = ip.make_dataset([ip.Source("uci_emg", "default")], "train", data_dir=str(tmp_path),
                       batch_size=2, seed=0, train=True, keep=("label", "subject"))
  batch = next(iter(ds))
  assert batch["emg"].shape == (2, 8, 1000) and batch["emg"].dtype == np.float32
  assert batch["emg"].min() >= -1 and batch["emg"].max() <= 1
  assert batch["label"].shape == (2,)
  meta = ip.source_metadata(ip.Source("uci_emg", "default"), str(tmp_path))
  assert meta["sample_rate_hz"] == 1000 and meta["num_channels"] == 8
  # A filtered split reads its records' fields once per process; a second load reuses them.
  everything = ip.load_source(ip.Source("uci_emg", "default"), "train", str(tmp_path))
  subjects = sorted({int(everything[i]["subject"]) for i in range(len(everything))})
  expr = f"train|subject={subjects[0]}"
  first = ip.load_source(ip.Source("uci_emg", "default"), expr, str(tmp_path))
  assert 0 < len(first) < len(everything)
  assert all(int(first[i]["subject"]) == subjects[0] for i in range(len(first)))
  calls = []
  monkeypatch.setattr(ip, "read_fields", lambda *a: calls.append(a) or {})
  again = ip.load_source(ip.Source("uci_emg", "default"), expr, str(tmp_path))
  assert not calls and again.index == first.index


def test_split_expressions_select_ranges_and_sets():
  names, where = ip.parse_split("train+validation|subject=1-3+7,repetition=2")
  assert names == ["train", "validation"]
  assert where == {"subject": frozenset({1, 2, 3, 7}), "repetition": frozenset({2})}
  records = [{"subject": s, "repetition": r} for s in range(1, 9) for r in (1, 2)]
  view = ip.RecordView([records[:8], records[8:]], where)
  assert [(r["subject"], r["repetition"]) for r in view] == [(1, 2), (2, 2), (3, 2), (7, 2)]


def test_split_expressions_exclude_values():
  names, where = ip.parse_split("train|subject!=2+5,repetition=1-2")
  assert names == ["train"] and where["subject"] == ip.Excluding({2, 5})
  assert where["subject"] != frozenset({2, 5}) and 3 in where["subject"]
  records = [{"subject": s, "repetition": r} for s in range(1, 7) for r in (1, 3)]
  view = ip.RecordView([records], where)
  assert [r["subject"] for r in view] == [1, 3, 4, 6]


@pytest.mark.parametrize("expr,problem", [
    ("train|subject=a-3", "bad value 'a-3'"),
    ("train|subject!=", "expected field=values or field!=values"),
    ("train|subject=5-2", "empty range '5-2'"),
    ("train|subject", "expected field=values"),
    ("train|subject=", "expected field=values"),
])
def test_bad_split_expressions_name_the_value(expr, problem):
  with pytest.raises(ValueError, match=problem):
    ip.parse_split(expr)


def test_augmentation_rotates_scales_and_shifts_per_window():
  x = np.arange(8 * 6, dtype=np.float32).reshape(8, 6)
  rng = np.random.default_rng(0)
  shifts = set()
  for _ in range(40):
    rotated = ip.Augment(ip.Augmentation(rotate=1)).random_map({"emg": x, "label": 3}, rng)
    assert rotated["label"] == 3
    shift = int(np.flatnonzero(rotated["emg"][:, 0] == 0)[0])  # where channel 0 went
    np.testing.assert_array_equal(rotated["emg"], np.roll(x, shift, axis=0))
    shifts.add(shift)
  assert shifts == {0, 1, 7}  # at most one channel either way
  scaled = ip.Augment(ip.Augmentation(scale=0.3)).random_map({"emg": x + 1}, rng)["emg"]
  gain = scaled / (x + 1)
  assert np.allclose(gain, gain.flat[0]) and np.exp(-0.3) <= gain.flat[0] <= np.exp(0.3)
  jittered = ip.Augment(ip.Augmentation(jitter=2)).random_map({"emg": x}, rng)["emg"]
  assert any(np.array_equal(jittered, np.roll(x, k, axis=1)) for k in range(-2, 3))
  with pytest.raises(ValueError, match="must be >= 0"):
    ip.Augmentation(scale=-0.1)
  with pytest.raises(ValueError, match="rotate=-1"):
    ip.Augmentation(rotate=-1)


def test_augmentation_changes_training_batches_only_and_is_seeded():
  source = [ip.Source("synthetic", "8x20:16")]
  kw = dict(data_dir="", batch_size=16, normalization="none")
  aug = ip.Augmentation(rotate=2, scale=0.2)
  plain = next(iter(ip.make_dataset(source, "train", seed=1, train=True, **kw)))["emg"]
  first = next(iter(ip.make_dataset(source, "train", seed=1, train=True, augmentation=aug,
                                    **kw)))["emg"]
  again = next(iter(ip.make_dataset(source, "train", seed=1, train=True, augmentation=aug,
                                    **kw)))["emg"]
  np.testing.assert_array_equal(first, again)
  assert not np.allclose(first, plain)
  # Same windows, only rotated and scaled: each window's sorted |values| match up to one gain.
  ratio = np.sort(np.abs(first), axis=None) / np.sort(np.abs(plain), axis=None)
  assert np.isfinite(ratio).all()
  evaluation = next(iter(ip.make_dataset(source, "validation", seed=1, train=False,
                                         augmentation=aug, **kw)))["emg"]
  np.testing.assert_array_equal(
      evaluation, next(iter(ip.make_dataset(source, "validation", seed=1, train=False,
                                            **kw)))["emg"])
