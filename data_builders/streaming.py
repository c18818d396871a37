"""Makes TFDS's plain (non-Beam) writer stream a split to disk without TensorFlow.

tensorflow-datasets 4.9's `shuffle.Shuffler` keeps every serialized example of a split in memory
until `MAX_MEM_BUFFER_SIZE` (1 GB), then moves them into 1000 bucket files (ranges of the hashed
key) and at the end reads the buckets back one at a time, sorted. Its bucket files are opened with
`tf.io.gfile`, so without TensorFlow any split above 1 GB fails, and below it memory grows with the
split. `streaming_writes()` swaps the bucket file I/O for `etils.epath` (plain files locally,
fsspec elsewhere) and lowers the buffer: peak memory is then the buffer plus one bucket
(split / 1000), whatever the split's size. The records and their order do not change: in memory or
in buckets, the shuffler emits the same (hashed key, bytes) pairs sorted by key.

Only `data_builders.build` applies it, for the duration of one `download_and_prepare`.
"""

from __future__ import annotations

import contextlib
import resource
import struct
from collections.abc import Iterator

from etils import epath
from tensorflow_datasets.core import shuffle

# pylint: disable=protected-access  (the patch targets TFDS's private bucket class)

DEFAULT_BUFFER_BYTES = 64 << 20
_SIZE = struct.Struct("=Q")   # the bucket record layout of tensorflow_datasets.core.shuffle
_Bucket = shuffle._Bucket


def _bucket_add(self, key: int, data: bytes) -> None:
  """`_Bucket.add` writing to `epath` instead of `tf.io.gfile.GFile`."""
  if not self._fobj:
    path = epath.Path(self._path)
    path.parent.mkdir(parents=True, exist_ok=True)
    self._fobj = path.open("wb")
  self._fobj.write(shuffle._hkey_to_bytes(key))
  self._fobj.write(_SIZE.pack(len(data)))
  self._fobj.write(data)
  self._length += 1
  self._size += len(data)


def _bucket_flush(self) -> None:
  """`_Bucket.flush`, which TFDS calls more than once: a plain file may be closed only once."""
  if self._fobj and not self._fobj.closed:
    self._fobj.close()


def _bucket_read_values(self) -> Iterator[tuple[int, bytes]]:
  """`_Bucket.read_values` over a plain file; a short record raises instead of passing."""
  self.flush()
  path = epath.Path(self._path)
  if not path.exists():   # a bucket no key fell into
    return
  with path.open("rb") as handle:
    while head := handle.read(shuffle.HKEY_SIZE_BYTES):
      size_bytes = handle.read(_SIZE.size)
      size = _SIZE.unpack(size_bytes)[0] if len(size_bytes) == _SIZE.size else -1
      data = handle.read(max(size, 0))
      if len(head) != shuffle.HKEY_SIZE_BYTES or len(data) != size:
        raise OSError(f"shuffle bucket {path} is truncated")
      yield shuffle._read_hkey(head), data


def _bucket_del_file(self) -> None:
  epath.Path(self._path).unlink(missing_ok=True)


def _raise_open_file_limit(needed: int) -> None:
  """Raises the soft limit on open files to `needed` when the hard limit allows it."""
  soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
  if soft != resource.RLIM_INFINITY and soft < needed:
    target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


@contextlib.contextmanager
def streaming_writes(buffer_bytes: int = DEFAULT_BUFFER_BYTES) -> Iterator[None]:
  """Within the block, TFDS's shuffler spills past `buffer_bytes` to files without TensorFlow.

  Raises:
    ValueError: `buffer_bytes` is not positive.
  """
  if buffer_bytes <= 0:
    raise ValueError(f"buffer_bytes must be positive, got {buffer_bytes}")
  # One open file per bucket plus the shards, the source files and the interpreter's own.
  _raise_open_file_limit(shuffle.BUCKETS_NUMBER + 256)
  patched = {"add": _bucket_add, "flush": _bucket_flush, "read_values": _bucket_read_values,
             "del_file": _bucket_del_file}
  saved = {name: getattr(_Bucket, name) for name in patched}
  saved_buffer = shuffle.MAX_MEM_BUFFER_SIZE
  try:
    for name, method in patched.items():
      setattr(_Bucket, name, method)
    shuffle.MAX_MEM_BUFFER_SIZE = buffer_bytes
    yield
  finally:
    for name, method in saved.items():
      setattr(_Bucket, name, method)
    shuffle.MAX_MEM_BUFFER_SIZE = saved_buffer
