"""Builds one corpus into sharded array_record files: `python -m data_builders.build <name> ...`.

  python -m data_builders.build uci_emg --manual_dir=/path/to/uci [--data_dir=DIR] [--config=hz200]
      [--beam_pipeline_options="runner=DirectRunner,direct_num_workers=2"] [--buffer_mb=64]

Calls the builder's `download_and_prepare` directly (the `tfds` CLI imports TensorFlow). TFDS writes
into an `incomplete.*` folder and renames it only when every split is written, so a failed build
leaves nothing that a later read accepts. Without Beam, records beyond `--buffer_mb` per split
stream through temporary files (`data_builders.streaming`), so memory stays flat.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import tensorflow_datasets as tfds

from data_builders import registry, streaming

MIN_SHARD_BYTES = 128 << 20   # full-scale shards land in ~128-512 MB: many parallel readers
MAX_SHARD_BYTES = 512 << 20


def beam_options(flags: str | None):
  """Parses "key=value,key=value" into Beam `PipelineOptions`, or None when `flags` is empty."""
  if not flags:
    return None
  try:
    from apache_beam.options.pipeline_options import PipelineOptions
  except ModuleNotFoundError as e:  # builders stand alone: the hint is written out here
    raise ValueError("Beam pipeline options need 'apache_beam', from the 'beam' extra: pip "
                     "install 'tinymyo-jax[beam]' (in a clone: pip install -e '.[beam]')") from e
  return PipelineOptions(flags=[f"--{flag.strip()}" for flag in flags.split(",") if flag.strip()])


def build(name: str, *, manual_dir: str | Path, data_dir: str | Path | None = None,
          config: str | None = None, beam_pipeline_options: str | None = None,
          overwrite: bool = False, max_examples_per_split: int | None = None,
          buffer_bytes: int = streaming.DEFAULT_BUFFER_BYTES) -> tfds.core.DatasetBuilder:
  """Builds `name` from `manual_dir` into `data_dir` and returns the prepared builder.

  Without Beam, each split is buffered up to `buffer_bytes` of serialized records and then
  streamed through temporary bucket files (see `data_builders.streaming`), so memory does not
  grow with the corpus.

  Raises:
    FileNotFoundError: `manual_dir` does not exist.
    ValueError: unknown dataset or config name.
  """
  if "://" not in str(manual_dir):   # a URL (gs://...) goes to TFDS unchanged
    manual_dir = Path(manual_dir).expanduser().resolve()
    if not manual_dir.is_dir():
      raise FileNotFoundError(f"manual_dir {manual_dir} does not exist")
  builder = registry.get_builder(name, data_dir=data_dir, config=config)
  mode = (tfds.download.GenerateMode.REUSE_CACHE_IF_EXISTS if overwrite
          else tfds.download.GenerateMode.REUSE_DATASET_IF_EXISTS)
  download_config = tfds.download.DownloadConfig(
      manual_dir=str(manual_dir), download_mode=mode, try_download_gcs=False,
      beam_options=beam_options(beam_pipeline_options), min_shard_size=MIN_SHARD_BYTES,
      max_shard_size=MAX_SHARD_BYTES, max_examples_per_split=max_examples_per_split)
  with streaming.streaming_writes(buffer_bytes):
    builder.download_and_prepare(download_config=download_config,
                                 file_format=registry.FILE_FORMAT)
  return builder


def describe(builder: tfds.core.DatasetBuilder) -> str:
  """Returns a short report: where the records are, examples and shards per split, metadata."""
  lines = [f"records in {builder.data_dir}"]
  for split, info in sorted(builder.info.splits.items()):
    lines.append(f"  {split}: {info.num_examples} examples in {info.num_shards} shard(s)")
  if builder.info.metadata:
    lines.append(f"  metadata: {dict(builder.info.metadata)}")
  return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(prog="python -m data_builders.build", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("name", help=f"one of: {', '.join(registry.known_datasets())}")
  parser.add_argument("--manual_dir", required=True, help="folder with the downloaded corpus")
  parser.add_argument("--data_dir", default=str(registry.DEFAULT_DATA_DIR),
                      help="root of the built datasets (default: %(default)s)")
  parser.add_argument("--config", default=None, help="builder config name (default: the first)")
  parser.add_argument("--beam_pipeline_options", default=None,
                      help='Beam flags without "--", comma-separated, e.g. '
                           '"runner=DirectRunner,direct_num_workers=4"')
  parser.add_argument("--overwrite", action="store_true", help="rebuild even if already built")
  parser.add_argument("--max_examples_per_split", type=int, default=None,
                      help="stop each split after this many examples (smoke builds)")
  parser.add_argument("--buffer_mb", type=int, default=streaming.DEFAULT_BUFFER_BYTES >> 20,
                      help="records held in memory per split before streaming to temporary "
                           "files (default: %(default)s)")
  args = parser.parse_args(argv)
  if args.buffer_mb <= 0:
    parser.error(f"--buffer_mb must be a positive number of MB, got {args.buffer_mb}")
  try:
    builder = build(args.name, manual_dir=args.manual_dir, data_dir=args.data_dir,
                    config=args.config, beam_pipeline_options=args.beam_pipeline_options,
                    overwrite=args.overwrite, max_examples_per_split=args.max_examples_per_split,
                    buffer_bytes=args.buffer_mb << 20)
  except (FileNotFoundError, ValueError) as error:
    print(f"error: {error}", file=sys.stderr)
    return 2
  print(describe(builder))
  return 0


if __name__ == "__main__":
  sys.exit(main())
