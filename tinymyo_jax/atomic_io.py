"""Atomic writes: build a file or folder under a temporary name beside it, rename it at the end.

A reader sees the old content or the complete new one, never a half-written file. Used by
`tinymyo_jax` and `export` alike; it imports nothing from either.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from typing import Any


def _parent(path: str) -> str:
  parent = os.path.dirname(os.path.abspath(path))
  os.makedirs(parent, exist_ok=True)
  return parent


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, suffix: str = "") -> Iterator[str]:
  """Yields a temporary file path beside `path` to write; renames it onto `path` on success.

  The temporary name is `.<name>.tmp-XXXX<suffix>` (give the suffix a writer insists on, e.g.
  ".npz"). On an exception it is removed and `path` is left as it was. The file ends up 0644.
  """
  path = os.fspath(path)
  fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.tmp-", suffix=suffix,
                             dir=_parent(path))
  os.close(fd)
  try:
    yield tmp
    os.chmod(tmp, 0o644)  # mkstemp makes it owner-only
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[str]:
  """Yields an empty temporary folder beside `path` to fill; it replaces `path` on success.

  An existing `path` is moved aside and removed only once the new folder is in place; on an
  exception the temporary folder is removed and `path` is left as it was.
  """
  path = os.fspath(path)
  tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(path)}.tmp-", dir=_parent(path))
  try:
    yield tmp
    os.chmod(tmp, 0o755)  # mkdtemp makes it owner-only
    old = None
    if os.path.exists(path):
      old = tempfile.mkdtemp(prefix=f".{os.path.basename(path)}.old-", dir=os.path.dirname(tmp))
      os.replace(path, old)
    try:
      os.rename(tmp, path)
    except BaseException:
      if old:
        os.replace(old, path)
      raise
    if old:
      shutil.rmtree(old, ignore_errors=True)
  finally:
    shutil.rmtree(tmp, ignore_errors=True)


def write_text(path: str | os.PathLike, text: str) -> None:
  """Writes `text` (UTF-8) to `path` atomically."""
  with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
    f.write(text)


def write_json(path: str | os.PathLike, data: Any, *, indent: int = 2, sort_keys: bool = False,
               default: Callable[[Any], Any] | None = None) -> None:
  """Writes `data` as JSON (plus a final newline) to `path` atomically."""
  write_text(path, json.dumps(data, indent=indent, sort_keys=sort_keys, default=default) + "\n")
