"""Finds the corpus builders by name and opens built splits as random-access sources.

A builder lives in `data_builders/<name>/<name>_dataset_builder.py` as a class `Builder`; the set of
known names is the set of such folders, so nothing depends on what happened to be imported.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import tensorflow_datasets as tfds

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent
DEFAULT_DATA_DIR = REPO_ROOT / "data" / "tfds"
FILE_FORMAT = "array_record"


class DatasetNotBuiltError(FileNotFoundError):
  """The requested dataset, config or split has not been built in `data_dir`."""


def known_datasets() -> list[str]:
  """Returns the names of the builder folders in this package, sorted."""
  return sorted(p.parent.name for p in PACKAGE_DIR.glob("*/*_dataset_builder.py")
                if p.name == f"{p.parent.name}_dataset_builder.py")


def builder_class(name: str) -> type[tfds.core.DatasetBuilder]:
  """Imports `data_builders.<name>` and returns its `Builder` class.

  Raises:
    ValueError: `name` is not one of `known_datasets()`.
  """
  known = known_datasets()
  if name not in known:
    raise ValueError(f"unknown dataset {name!r}; known datasets: {', '.join(known)}")
  module = importlib.import_module(f"data_builders.{name}.{name}_dataset_builder")
  return module.Builder


def get_builder(name: str, *, data_dir: str | Path | None = None,
                config: str | None = None) -> tfds.core.DatasetBuilder:
  """Returns the TFDS builder of corpus `name` rooted at `data_dir` (default `<repo>/data/tfds`).

  Raises:
    ValueError: unknown dataset name or unknown config name (the message lists the valid ones).
  """
  cls = builder_class(name)
  config_names = [c.name for c in (cls.BUILDER_CONFIGS or [])]
  if config is not None and config not in config_names:
    raise ValueError(f"dataset {name!r} has no config {config!r}; configs: "
                     f"{', '.join(config_names) or '(none)'}")
  kwargs: dict[str, Any] = {"data_dir": str(data_dir or DEFAULT_DATA_DIR)}
  if config is not None:
    kwargs["config"] = config
  return cls(**kwargs)


def build_command(name: str, *, data_dir: str | Path | None, config: str | None) -> str:
  """Returns the shell command that builds `name` (shown in errors)."""
  parts = [f"python -m data_builders.build {name} --manual_dir=DIR"]
  if data_dir is not None:
    parts.append(f"--data_dir={data_dir}")
  if config is not None:
    parts.append(f"--config={config}")
  return " ".join(parts)


def load_split(name: str, split: str, *, data_dir: str | Path | None = None,
               config: str | None = None) -> Sequence[dict[str, Any]]:
  """Returns a random-access source (`len`, `__getitem__` -> numpy dict) over one built split.

  `split` may carry a TFDS slice, e.g. "train[:10%]".

  Raises:
    DatasetNotBuiltError: the dataset/config is not built in `data_dir`, or has no such split.
  """
  builder = get_builder(name, data_dir=data_dir, config=config)
  config_name = builder.builder_config.name if builder.builder_config else None
  where = f"dataset {name!r} (config {config_name!r}) in data_dir {builder.data_dir_root}"
  if not builder.is_prepared():
    raise DatasetNotBuiltError(f"{where} is not built; run: "
                               f"{build_command(name, data_dir=data_dir, config=config)}")
  base = split.split("[", 1)[0]
  if base not in builder.info.splits:
    raise DatasetNotBuiltError(f"{where} has no split {base!r}; built splits: "
                               f"{', '.join(sorted(builder.info.splits))}")
  return builder.as_data_source(split)
