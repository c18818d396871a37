"""scikit-learn estimators over TinyMyo: `TinyMyoClassifier` and `TinyMyoRegressor`.

`fit(X, y, groups=None)` takes windows X [N, channels, samples] and runs the project's own
fine-tuning (`finetune.run` with the recipe of `configs/finetune.py`: AdamW, warm-up + cosine,
layer-wise LR decay, early stopping on validation loss, best-validation params kept). The arrays
reach the loop as an in-memory corpus (`input_pipeline.register_arrays`). The validation split
holds out whole groups (subjects) when `groups` is given, else a stratified (classifier) or plain
random share of the windows. `init_from` starts from pretrained weights: an orbax checkpoint
directory, or any file `tinymyo_jax.from_pretrained` reads (official, braindecode, our exports).

Fitted estimators hold numpy params and configs only, so pickle / joblib work.
Needs scikit-learn (the `sklearn` extra).
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import tempfile
import uuid

import numpy as np

from tinymyo_jax import extras

extras.require("sklearn", "TinyMyoClassifier / TinyMyoRegressor")  # imported on their first use
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin  # noqa: E402
from sklearn.utils.validation import check_array, check_is_fitted  # noqa: E402


def validation_split(n: int, *, fraction: float, seed: int, groups=None, y=None):
  """(train, validation) index arrays: whole groups held out when `groups` is given, else
  stratified by `y` when every class has two windows or more, else plain random."""
  from sklearn.model_selection import GroupShuffleSplit, ShuffleSplit, StratifiedShuffleSplit

  if not 0.0 < fraction < 1.0:
    raise ValueError(f"validation_fraction={fraction}; expected a value in (0, 1)")
  idx = np.arange(n)
  if groups is not None:
    groups = np.asarray(groups)
    if len(groups) != n:
      raise ValueError(f"groups has {len(groups)} entries for {n} windows")
    if len(np.unique(groups)) < 2:
      raise ValueError("groups holds a single group; a grouped validation split needs two or "
                       "more (or pass groups=None)")
    splitter = GroupShuffleSplit(n_splits=1, test_size=fraction, random_state=seed)
    return next(splitter.split(idx, groups=groups))
  if y is not None:
    _, counts = np.unique(y, return_counts=True)
    num_val = round(fraction * n)
    if counts.min() >= 2 and min(num_val, n - num_val) >= len(counts):
      splitter = StratifiedShuffleSplit(n_splits=1, test_size=fraction, random_state=seed)
      return next(splitter.split(idx, y))
  return next(ShuffleSplit(n_splits=1, test_size=fraction, random_state=seed).split(idx))


def _windows(X) -> np.ndarray:
  X = check_array(X, allow_nd=True, dtype=np.float32)
  if X.ndim != 3:
    raise ValueError(f"X must be windows [n_windows, n_channels, n_samples] (3-D), got shape "
                     f"{X.shape}")
  return X


def _targets(y, name: str) -> np.ndarray:
  if y is None:
    raise ValueError(f"{name} requires y to be passed, but the target y is None")
  y = np.asarray(y)
  if np.iscomplexobj(y):
    raise ValueError(f"Complex data not supported: y has dtype {y.dtype}")
  return y


def _variant_of(config) -> str:
  """The VARIANTS name with this config's architecture (finetune configs name a variant)."""
  from tinymyo_jax.models.tinymyo import VARIANTS

  arch = ("num_layers", "embed_dim", "num_heads", "mlp_ratio", "patch_size")
  for name, fields in VARIANTS.items():
    if all(fields[f] == getattr(config, f) for f in arch):
      return name
  raise ValueError(f"init_from holds an architecture that is no known variant "
                   f"({ {f: getattr(config, f) for f in arch} }); known: {sorted(VARIANTS)}")


class _TinyMyoEstimator(BaseEstimator):
  """Shared fit / forward; subclasses say the task and how targets map to records."""

  _task = ""

  def __init__(self, *, init_from=None, variant="tiny", num_epochs=50, total_steps=0,
               batch_size=32, peak_lr=5e-4, warmup_epochs=5, layer_decay=0.9,
               freeze_backbone=False, validation_fraction=0.2, patience=7,
               normalization="standardize", sample_rate_hz=None, random_state=0, workdir=None,
               verbose=False):
    self.init_from = init_from
    self.variant = variant
    self.num_epochs = num_epochs
    self.total_steps = total_steps
    self.batch_size = batch_size
    self.peak_lr = peak_lr
    self.warmup_epochs = warmup_epochs
    self.layer_decay = layer_decay
    self.freeze_backbone = freeze_backbone
    self.validation_fraction = validation_fraction
    self.patience = patience
    self.normalization = normalization
    self.sample_rate_hz = sample_rate_hz
    self.random_state = random_state
    self.workdir = workdir
    self.verbose = verbose

  def __sklearn_tags__(self):
    tags = super().__sklearn_tags__()
    tags.input_tags.three_d_array = True  # two_d_array stays True so sklearn's checks run
    return tags

  # --------------------------------------------------------------------------- fit

  def _config(self, X, num_outputs: int, target_len: int, init_path: str | None):
    from configs import finetune as finetune_configs
    from tinymyo_jax.input_pipeline import IN_MEMORY

    template = "uci" if self._task == "classification" else "db8"
    c = finetune_configs.get_config(template).unlock()
    c.name = f"sklearn_{self._task}"
    c.data.sources = ((IN_MEMORY, self._key, 1.0),)
    c.data.train_split, c.data.eval_split = "train", "validation"
    c.data.test_split = "validation"  # finetune.run's test pass; the caller holds the real test
    c.data.normalization = self.normalization
    c.model.variant = self.variant
    c.model.num_channels = X.shape[1]
    c.model.num_outputs = num_outputs
    c.model.target_len = target_len
    c.init_from = init_path or ""
    c.seed = int(self.random_state)
    c.batch_size = int(self.batch_size)
    c.total_steps = int(self.total_steps)
    c.optimizer.peak_lr = float(self.peak_lr)
    c.finetune.num_epochs = int(self.num_epochs)
    c.finetune.warmup_epochs = int(self.warmup_epochs)
    c.finetune.layer_decay = float(self.layer_decay)
    c.finetune.freeze_backbone = bool(self.freeze_backbone)
    c.early_stopping_patience = int(self.patience)
    c.progress_bar = False
    return c.lock()

  def _init_checkpoint(self, tmp: str, channels: int, num_outputs: int) -> str | None:
    """`init_from` as a checkpoint directory the fine-tuning driver reads (files converted)."""
    from flax import nnx

    from tinymyo_jax import checkpointing, pretrained

    if not self.init_from:
      return None
    path = os.fspath(self.init_from)
    if os.path.isdir(path):
      meta = checkpointing.load_meta(path)
      self.variant_ = _variant_of(checkpointing.model_config_from_json(meta["model"]))
      return path
    try:
      loaded = pretrained.load(path)
    except pretrained.PretrainedError as e:
      if "no task head" not in str(e):
        raise
      loaded = pretrained.load(path, n_chans=channels, n_outputs=num_outputs)  # encoder only
    self.variant_ = _variant_of(loaded.config)
    out = os.path.join(tmp, "init")
    checkpointing.save_params(out, nnx.to_pure_dict(nnx.state(loaded.model, nnx.Param)),
                              loaded.config)
    return out

  def _fit(self, X, targets: dict[str, np.ndarray], num_outputs: int, target_len: int,
           groups=None, stratify=None):
    from tinymyo_jax import checkpointing, finetune, input_pipeline

    if len(X) != len(next(iter(targets.values()))):
      raise ValueError(f"X has {len(X)} windows, y has {len(next(iter(targets.values())))}")
    train_idx, val_idx = validation_split(len(X), fraction=self.validation_fraction,
                                          seed=int(self.random_state), groups=groups, y=stratify)
    subject = (np.unique(np.asarray(groups), return_inverse=True)[1] if groups is not None
               else np.zeros(len(X), np.int64))
    splits = {name: input_pipeline.ArrayRecords(
        X[idx], subject=subject[idx], **{k: v[idx] for k, v in targets.items()})
              for name, idx in (("train", train_idx), ("validation", val_idx))}
    self._key = f"sklearn-{uuid.uuid4().hex}"
    meta = {"num_channels": X.shape[1], "window": X.shape[2],
            "sample_rate_hz": self.sample_rate_hz}
    tmp = tempfile.mkdtemp(prefix="tinymyo_sklearn_")
    workdir = self.workdir or os.path.join(tmp, "run")
    out = contextlib.nullcontext() if self.verbose else contextlib.redirect_stdout(io.StringIO())
    try:
      input_pipeline.register_arrays(self._key, splits, meta)
      self.variant_ = self.variant
      init_path = self._init_checkpoint(tmp, X.shape[1], num_outputs)
      config = self._config(X, num_outputs, target_len, init_path)
      if self.variant_ != self.variant:
        with config.unlocked():
          config.model.variant = self.variant_
      with out:
        summary = finetune.run(config, workdir)
      best = summary["runs"][0]["best_dir"]
      params, model_config, ckpt_meta = checkpointing.load_params(best)
    finally:
      input_pipeline.unregister_arrays(self._key)
      del self._key
      shutil.rmtree(tmp, ignore_errors=True)
    self.params_ = _numpy_tree(params)
    self.model_config_ = model_config
    self.input_stats_ = ckpt_meta.get("input_stats")
    self.n_channels_in_, self.n_samples_in_ = X.shape[1], X.shape[2]
    run = summary["runs"][0]
    self.fit_summary_ = {k: run[k] for k in ("best_step", "best_eval_loss", "steps")}
    self.fit_summary_.update(num_train=int(len(train_idx)), num_validation=int(len(val_idx)))
    return self

  # --------------------------------------------------------------------------- forward

  def _outputs(self, X) -> np.ndarray:
    """Head outputs for X, preprocessed exactly as in training (`input_pipeline`)."""
    import jax
    from flax import nnx

    from tinymyo_jax import input_pipeline
    from tinymyo_jax.models.tinymyo import create_model

    check_is_fitted(self, "params_")
    X = _windows(X)
    if X.shape[1] != self.n_channels_in_:
      raise ValueError(f"X has {X.shape[1]} channels, the estimator was fitted on "
                       f"{self.n_channels_in_}")
    if X.shape[2] % self.model_config_.patch_size:
      raise ValueError(f"X has {X.shape[2]} samples per window, not a multiple of the patch "
                       f"size {self.model_config_.patch_size}")
    if getattr(self, "_forward", None) is None:
      graphdef, params = nnx.split(create_model(self.model_config_, params=self.params_))
      self._forward = (jax.jit(lambda p, x: nnx.merge(graphdef, p)(x)), params)
    forward, params = self._forward
    batches = input_pipeline.make_dataset(
        [input_pipeline.Source(input_pipeline.IN_MEMORY)], "test", data_dir="",
        batch_size=int(self.batch_size), seed=0, train=False, normalization=self.normalization,
        records=[input_pipeline.ArrayRecords(X)], stats=self.input_stats_)
    outs = []
    for batch in batches:
      x = batch["emg"]
      n = len(x)
      if n < self.batch_size:  # one compiled shape
        x = np.concatenate([x, np.repeat(x[-1:], int(self.batch_size) - n, axis=0)])
      outs.append(np.asarray(forward(params, x))[:n])
    return np.concatenate(outs)

  def __getstate__(self):
    state = dict(self.__dict__)
    state.pop("_forward", None)  # jitted function: rebuilt on first use after unpickling
    return state


def _numpy_tree(tree):
  if isinstance(tree, dict):
    return {k: _numpy_tree(v) for k, v in tree.items()}
  return np.asarray(tree)


class TinyMyoClassifier(ClassifierMixin, _TinyMyoEstimator):
  """TinyMyo fine-tuned as a window classifier (cross-entropy with label smoothing 0.1)."""

  _task = "classification"

  def fit(self, X, y, groups=None):
    """Fine-tunes on windows X [N, C, T] with labels y [N]; `groups` (e.g. subject ids) makes
    the internal early-stopping validation split hold out whole groups."""
    from sklearn.utils.multiclass import check_classification_targets

    y = _targets(y, type(self).__name__)  # y first: its errors are sklearn's expected ones
    if y.ndim != 1:
      raise ValueError(f"y must be one label per window (1-D), got shape {y.shape}")
    check_classification_targets(y)
    self.classes_, encoded = np.unique(y, return_inverse=True)
    if len(self.classes_) < 2:
      raise ValueError(f"y holds a single class {self.classes_.tolist()}; a classifier needs "
                       f"two classes or more")
    X = _windows(X)
    return self._fit(X, {"label": encoded.astype(np.int32)}, len(self.classes_), 500,
                     groups=groups, stratify=encoded)

  def predict_proba(self, X) -> np.ndarray:
    logits = self._outputs(X).astype(np.float64)
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)

  def predict(self, X) -> np.ndarray:
    best = self._outputs(X).argmax(axis=1)  # first: it checks that the estimator is fitted
    return self.classes_[best]


class TinyMyoRegressor(RegressorMixin, _TinyMyoEstimator):
  """TinyMyo fine-tuned with its regression head (L1 loss).

  y: [N] (one value per window), [N, K] (K outputs) or [N, K, L] (K signals of L steps, as
  NinaPro DB8's joint angles); `predict` returns the same layout.
  """

  _task = "regression"

  def fit(self, X, y, groups=None):
    """Fine-tunes on windows X [N, C, T] with targets y (see the class docstring)."""
    y = _targets(y, type(self).__name__).astype(np.float32)
    X = _windows(X)
    if y.ndim not in (1, 2, 3) or len(y) != len(X):
      raise ValueError(f"y must be [N], [N, K] or [N, K, L] with N={len(X)}, got shape {y.shape}")
    if not np.isfinite(y).all():
      raise ValueError("y holds NaN or infinite values")
    self.y_ndim_ = y.ndim
    angles = y.reshape(len(y), 1, 1) if y.ndim == 1 else (y[..., None] if y.ndim == 2 else y)
    return self._fit(X, {"angles": angles}, angles.shape[1], angles.shape[2], groups=groups)

  def predict(self, X) -> np.ndarray:
    out = np.swapaxes(self._outputs(X), 1, 2)  # [N, L, K] -> [N, K, L]
    if self.y_ndim_ == 1:
      return out[:, 0, 0]
    return out[..., 0] if self.y_ndim_ == 2 else out


