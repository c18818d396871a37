"""Device mesh, logical-axis rules and the shardings of params and batches.

Model code names parameter axes logically (`embed`, `mlp`, `qkv`, ...); `LOGICAL_AXIS_RULES` maps
them onto the mesh axes `data` and `fsdp`. Changing the parallelism is a config edit.
"""

from __future__ import annotations

import jax
import numpy as np
from flax import nnx
from flax.core import spmd
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

MESH_AXES = ("data", "fsdp")
BATCH_AXES = ("data", "fsdp")  # the batch is split over every device

# FSDP: every parameter with an `embed` axis is split over `fsdp`; the rest is replicated.
LOGICAL_AXIS_RULES = (
    ("embed", "fsdp"),
    ("patch", None),
    ("qkv", None),
    ("heads", None),
    ("mlp", None),
    ("fused", None),
    ("classes", None),
)


def make_mesh(data: int, fsdp: int, devices=None) -> Mesh:
  """A (data, fsdp) mesh over the first data*fsdp devices; -1 for `data` takes all that remain."""
  devices = list(jax.devices() if devices is None else devices)
  if data == -1:
    if len(devices) % fsdp:
      raise ValueError(f"mesh fsdp={fsdp} does not divide the {len(devices)} available devices")
    data = len(devices) // fsdp
  if data < 1 or fsdp < 1 or data * fsdp > len(devices):
    raise ValueError(f"mesh data={data} x fsdp={fsdp} needs {data * fsdp} devices, "
                     f"{len(devices)} are available")
  grid = np.array(devices[: data * fsdp]).reshape(data, fsdp)
  return Mesh(grid, MESH_AXES, axis_types=(AxisType.Auto, AxisType.Auto))


def logical_partition_specs(abstract_state: nnx.State, rules=LOGICAL_AXIS_RULES):
  """PartitionSpecs (mesh axes) for a State whose Variables carry logical axis names."""
  with spmd.logical_axis_rules(rules):
    return nnx.get_partition_spec(abstract_state)


def named_shardings(mesh: Mesh, specs):
  """Turns a pytree of PartitionSpecs into NamedShardings on `mesh`."""
  return jax.tree.map(lambda s: NamedSharding(mesh, s), specs,
                      is_leaf=lambda x: isinstance(x, P))


def batch_sharding(mesh: Mesh, ndim: int) -> NamedSharding:
  """Sharding of a batch array: leading axis split over all mesh axes, the rest replicated."""
  return NamedSharding(mesh, P(BATCH_AXES, *([None] * (ndim - 1))))


def host_to_global(mesh: Mesh, batch: dict[str, np.ndarray]) -> dict[str, jax.Array]:
  """Assembles each process's local batch into global arrays sharded over the batch axes."""
  return {k: jax.make_array_from_process_local_data(batch_sharding(mesh, v.ndim), v)
          for k, v in batch.items()}


def check_process_rows(mesh: Mesh, global_batch: int) -> None:
  """Checks that this process's devices hold rows [i*b, (i+1)*b) of a global batch (process i,
  b = global_batch / process count): where `host_to_global` puts its local batch, and the rows
  `input_pipeline.make_dataset` reads for it."""
  index, count = jax.process_index(), jax.process_count()
  indices = batch_sharding(mesh, 1).devices_indices_map((global_batch,))
  rows = sorted({(s[0].start or 0, global_batch if s[0].stop is None else s[0].stop)
                 for d, s in indices.items() if d.process_index == index})
  b = global_batch // count
  span = (rows[0][0], rows[-1][1]) if rows else None
  if sum(stop - start for start, stop in rows) != b or span != (index * b, (index + 1) * b):
    raise ValueError(f"process {index} of {count} holds batch rows {rows} on the mesh; expected "
                     f"the block [{index * b}, {(index + 1) * b}) (mesh devices ordered by "
                     f"process, every process in the mesh)")
