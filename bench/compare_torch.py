"""JAX vs PyTorch TinyMyo at the same work: training steps and eval forward, A/B/A/B.

  python bench/compare_torch.py [--tasks pretrain:16,eval:1,eval:64] [--reps 5]
      [--channels 16 --samples 1000] [--dtype float32|bfloat16] [--torch_dtype ...]
      [--frameworks jax,torch,torch_compile] [--rope_mode released] [--xla_flags "..."]
      [--json OUT.json]

A task is `kind:batch`, kind one of
  pretrain  the pretraining step: a random 50% patch mask per example, forward with dropouts,
            SmoothL1(masked) + 0.1 SmoothL1(visible), backward, global-norm clip 3, AdamW
            (b2 0.98, weight decay 0.01 on matrices)
  finetune  the fine-tuning step of a classification task: concat head, 6 classes,
            cross-entropy, backward through everything, AdamW with layer-wise LR decay 0.9
  probe     the linear-probing step: the encoder runs deterministically without gradients,
            only the head trains
  eval      the eval forward of the pretraining model
(`train`, `eval1`, `eval64` are the older names of pretrain:--train_batch, eval:1, eval:64.)
The JAX side is the trainer's own compiled step (`bench/jax_steps.py`), the PyTorch side
`export/torch_model.py` with the same objective and optimizer.

One long-lived worker process per framework builds the model, compiles and warms up each task;
the parent then asks the workers in turn (A, B, A, B, ...) to time one repetition, so machine
load drifts hit every framework alike. Each repetition also measures the ceiling: a 2048^3
matmul in fp32, and in bf16 in the workers that compute in bf16 (the best worker counts).
Figures: median examples/s over the repetitions, ratio to PyTorch eager, and achieved model
FLOP/s as a fraction of the ceiling of its compute dtype (`--torch_dtype` may differ from
`--dtype`). Model FLOPs are counted analytically (`bench/flops.py`; a probe step counts as one
forward).
bf16 means bf16 compute with fp32 params: the JAX model's `dtype="bfloat16"`,
`torch.autocast("cpu", torch.bfloat16)` on the PyTorch side.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench import flops as flops_lib  # noqa: E402
from tinymyo_jax import atomic_io, cpu_features, extras  # noqa: E402

KINDS = ("pretrain", "finetune", "probe", "eval")
OLD_NAMES = {"eval1": "eval:1", "eval64": "eval:64"}
MIN_REP_SECONDS = 1.0  # a repetition repeats the call until it lasts at least this long


def parse_task(task: str, train_batch: int) -> tuple[str, int]:
  """'kind:batch' (or an older name) -> (kind, batch); raises ValueError naming the task."""
  task = OLD_NAMES.get(task, f"pretrain:{train_batch}" if task == "train" else task)
  kind, _, batch = task.partition(":")
  if kind not in KINDS or not batch.isdigit() or int(batch) < 1:
    raise ValueError(f"task {task!r} is not kind:batch with kind in {KINDS} and batch >= 1")
  return kind, int(batch)


def synthetic_emg(batch: int, args) -> np.ndarray:
  return np.random.default_rng(0).uniform(-1, 1, (batch, args.channels, args.samples)).astype(
      np.float32)


# ----------------------------------------------------------------------------- workers


class JaxWorker:
  """Compiled JAX steps (the trainer's own code path) for each task."""

  def __init__(self, args):
    import jax

    self.jax = jax

  def make(self, task, args):
    """A zero-argument callable that runs one step of `task` to completion."""
    from flax import nnx

    from bench import jax_steps
    from tinymyo_jax import sharding

    kind, batch = task
    step, state, data, key, graphdef, _ = jax_steps.build(
        "pretrain" if kind == "eval" else kind, channels=args.channels, samples=args.samples,
        batch=batch, variant=args.variant, dtype=args.dtype, rope_mode=args.rope_mode)
    if kind == "eval":
      forward = self.jax.jit(lambda params, x: nnx.merge(graphdef, params)(x))
      params = state["params"]
      x = sharding.host_to_global(sharding.make_mesh(-1, 1), {"emg": synthetic_emg(batch, args)})
      return lambda: forward(params, x["emg"]).block_until_ready()
    holder = {"state": state}

    def run():
      holder["state"], metrics = step(holder["state"], data, key)
      self.jax.block_until_ready(metrics)
    return run

  def matmul(self, dtype: str):
    import jax.numpy as jnp
    a = jnp.asarray(np.random.default_rng(1).standard_normal((2048, 2048)), dtype)
    f = self.jax.jit(lambda u, v: u @ v)
    return lambda: f(a, a).block_until_ready()


class TorchWorker:
  """The same steps on `export/torch_model.py`, eager or under `torch.compile`."""

  def __init__(self, args, compiled: bool):
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    torch.manual_seed(0)
    self.torch, self.compiled = torch, compiled
    self.autocast = dict(device_type="cpu", dtype=torch.bfloat16,
                         enabled=args.dtype == "bfloat16")

  def build(self, args, head: str):
    from export.torch_model import TorchConfig, build

    v = flops_lib.VARIANTS[args.variant]
    return build(TorchConfig(
        num_layers=v["num_layers"], rope_mode=args.rope_mode, embed_dim=v["embed_dim"],
        num_heads=v["num_heads"], mlp_ratio=v["mlp_ratio"], head=head,
        num_channels=args.channels, num_outputs=6 if head == "classification" else 0))

  def adamw(self, groups):
    """AdamW as the trainer's: b2 0.98, weight decay 0.01 on matrices only."""
    out = []
    for params, lr in groups:
      decay = [p for p in params if p.ndim >= 2 and p.shape[0] != 1]
      rest = [p for p in params if not (p.ndim >= 2 and p.shape[0] != 1)]
      out += [{"params": decay, "weight_decay": 0.01, "lr": lr},
              {"params": rest, "weight_decay": 0.0, "lr": lr}]
    return self.torch.optim.AdamW(out, lr=1e-4, betas=(0.9, 0.98), eps=1e-8)

  def pretrain_loss(self, net, x):
    torch = self.torch
    b, c, t = x.shape
    n = c * (t // 20)
    ranks = torch.rand(b, n).argsort(-1).argsort(-1)
    mask = ranks < int(0.5 * n)
    with torch.autocast(**self.autocast):
      pred = net(x, mask)
    target = x.reshape(b, n, 20)
    elem = torch.nn.functional.smooth_l1_loss(pred.float(), target, reduction="none")
    m = mask[..., None].expand_as(elem).float()
    masked = (elem * m).sum() / m.sum().clamp_min(1)
    visible = (elem * (1 - m)).sum() / (1 - m).sum().clamp_min(1)
    return masked + 0.1 * visible

  def make(self, task, args):
    torch = self.torch
    kind, batch = task
    x = torch.from_numpy(synthetic_emg(batch, args))
    model = self.build(args, "reconstruction" if kind in ("pretrain", "eval") else
                       "classification")
    net = torch.compile(model) if self.compiled else model
    if kind == "eval":
      def run_eval():
        model.eval()
        with torch.inference_mode(), torch.autocast(**self.autocast):
          net(x)
      return run_eval
    labels = torch.from_numpy(np.random.default_rng(0).integers(0, 6, batch))
    layers = len(model.blocks)
    if kind == "pretrain":
      opt = self.adamw([(list(model.parameters()), 1e-4)])
      params = list(model.parameters())
      loss_of = lambda: self.pretrain_loss(net, x)  # noqa: E731
    elif kind == "finetune":  # LLRD: depth 0 = embedding, 1..L = blocks, L + 1 = norm and head
      def depth(name):
        if name.startswith("blocks."):
          return int(name.split(".")[1]) + 1
        return 0 if name.startswith(("patch_embedding", "mask_token")) else layers + 1
      by_depth = {}
      for name, p in model.named_parameters():
        by_depth.setdefault(depth(name), []).append(p)
      opt = self.adamw([(ps, 5e-4 * 0.9 ** (layers + 1 - d)) for d, ps in by_depth.items()])
      params = list(model.parameters())

      def loss_of():
        with torch.autocast(**self.autocast):
          logits = net(x)
        return torch.nn.functional.cross_entropy(logits.float(), labels)
    else:  # probe: the frozen encoder in eval mode without gradients, the head trains
      head = model.model_head
      params = list(head.parameters())
      opt = self.adamw([(params, 5e-4)])

      def loss_of():
        with torch.autocast(**self.autocast):
          with torch.no_grad():
            model.eval()
            latent = model.encode(x)
          head.train()
          logits = head(latent, x.shape[1])
        return torch.nn.functional.cross_entropy(logits.float(), labels)

    def run():
      if kind != "probe":
        model.train()
      opt.zero_grad(set_to_none=True)
      loss_of().backward()
      torch.nn.utils.clip_grad_norm_(params, 3.0)
      opt.step()
    return run

  def matmul(self, dtype: str):
    a = self.torch.randn(2048, 2048, dtype=getattr(self.torch, dtype))
    return lambda: a @ a


def time_calls(fn, iters: int) -> float:
  """Median seconds of `iters` calls."""
  times = []
  for _ in range(iters):
    t = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t)
  return float(np.median(times))


def worker_main(args) -> None:
  """Serves the parent: one JSON command per stdin line, one JSON answer per stdout line."""
  out = sys.stdout
  sys.stdout = sys.stderr  # library chatter must not corrupt the protocol
  if args.worker == "jax":
    w = JaxWorker(args)
  else:
    w = TorchWorker(args, compiled=args.worker == "torch_compile")
  fns, iters, setup = {}, {}, {}
  for name in args.tasks.split(","):
    t0 = time.perf_counter()
    try:
      fns[name] = w.make(parse_task(name, args.train_batch), args)
      fns[name]()  # compile / first call
      warm = time_calls(fns[name], 1)
      iters[name] = max(1, int(np.ceil(MIN_REP_SECONDS / max(warm, 1e-6))))
      setup[name] = round(time.perf_counter() - t0, 1)
    except Exception as e:  # noqa: BLE001 - e.g. torch.compile failing on this platform
      setup[name] = f"failed: {type(e).__name__}: {str(e)[:200]}"
  # fp32 and the worker's own compute dtype: a framework without a native bf16 kernel on this CPU
  # (PyTorch ~1 GFLOP/s on AVX2-only chips) would spend minutes on a bf16 ceiling it never uses.
  mm = {d: w.matmul(d) for d in dict.fromkeys(("float32", args.dtype))}
  for f in mm.values():
    f()
  print(json.dumps({"ready": setup}), file=out, flush=True)
  for line in sys.stdin:
    cmd = json.loads(line)
    if cmd["op"] == "quit":
      break
    if cmd["op"] == "ceiling":
      ans = {d: 2 * 2048 ** 3 / time_calls(f, 5) / 1e9 for d, f in mm.items()}
    elif cmd["task"] in fns:
      ans = {"seconds": time_calls(fns[cmd["task"]], iters[cmd["task"]])}
    else:
      ans = {"seconds": None}
    print(json.dumps(ans), file=out, flush=True)


# ----------------------------------------------------------------------------- parent


class Worker:
  """Parent-side handle of one worker process."""

  def __init__(self, name, args):
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", name]
    for k in ("tasks", "train_batch", "dtype", "variant", "rope_mode", "channels", "samples"):
      cmd += [f"--{k}", str(getattr(args, k))]
    if name.startswith("torch") and args.torch_dtype:
      cmd[cmd.index("--dtype") + 1] = args.torch_dtype
    env = dict(os.environ, PYTHONPATH=ROOT)
    if name == "jax" and args.xla_flags:
      env["XLA_FLAGS"] = args.xla_flags
    if name.startswith("torch") and args.omp_wait_policy:
      env["OMP_WAIT_POLICY"] = args.omp_wait_policy
    self.name = name
    self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env,
                                 text=True)
    self.ready = None

  def wait_ready(self):
    line = self.proc.stdout.readline()
    if not line:
      raise RuntimeError(f"worker {self.name} exited during setup (code {self.proc.wait()})")
    self.ready = json.loads(line)["ready"]
    return self.ready

  def ask(self, **cmd):
    self.proc.stdin.write(json.dumps(cmd) + "\n")
    self.proc.stdin.flush()
    line = self.proc.stdout.readline()
    if not line:
      raise RuntimeError(f"worker {self.name} died (code {self.proc.wait()})")
    return json.loads(line)

  def close(self):
    if self.proc.poll() is None:
      self.proc.stdin.write(json.dumps({"op": "quit"}) + "\n")
      self.proc.stdin.flush()
      self.proc.wait(timeout=60)


def load() -> str:
  return "/".join(f"{v:.1f}" for v in os.getloadavg())


def run_parent(args) -> dict:
  from tqdm import tqdm

  names = args.frameworks.split(",")
  workers = []
  try:
    for name in names:  # one at a time: one worker's compiles do not slow the other's setup
      workers.append(Worker(name, args))
      print(f"[{name}] setup: {workers[-1].wait_ready()}  (load {load()})", flush=True)
    results = {"tasks": {}, "ceiling": {"float32": [], "bfloat16": []}, "load": [load()]}
    for task in args.tasks.split(","):
      per = {w.name: [] for w in workers}
      for _ in tqdm(range(args.reps), desc=task, unit="rep"):
        for w in workers:
          if w.name in ("jax", "torch"):
            c = w.ask(op="ceiling")
            for d in c:
              results["ceiling"][d].append((w.name, c[d]))
          per[w.name].append(w.ask(op="time", task=task)["seconds"])
      results["tasks"][task] = per
      results["load"].append(load())
  finally:
    for w in workers:
      w.close()
  return summarize(results, args, {w.name: w.ready for w in workers})


def summarize(results, args, setup) -> dict:
  ceiling = {d: max(v for _, v in vals) for d, vals in results["ceiling"].items() if vals}
  ceiling_by = {d: {n: float(np.median([v for m, v in vals if m == n]))
                    for n in {m for m, _ in vals}} for d, vals in results["ceiling"].items()}
  rows = []

  def dtype_of(name):
    return args.torch_dtype or args.dtype if name.startswith("torch") else args.dtype

  for task, per in results["tasks"].items():
    kind, batch = parse_task(task, args.train_batch)
    model_flops = flops_lib.model_flops_per_example(
        args.variant, args.channels, args.samples, train=kind in ("pretrain", "finetune"))
    base = per.get("torch")
    base_eps = (batch / float(np.median(base)) if base and None not in base else None)
    for name, secs in per.items():
      if not secs or None in secs:
        rows.append({"task": task, "framework": name, "status": setup[name].get(task)})
        continue
      eps = batch / float(np.median(secs))
      rows.append({
          "task": task, "framework": name, "batch": batch, "examples_per_s": round(eps, 2),
          "min_max_examples_per_s": [round(batch / max(secs), 2), round(batch / min(secs), 2)],
          "vs_torch_eager": base_eps and round(eps / base_eps, 3),
          "model_gflop_per_s": round(eps * model_flops / 1e9, 1),
          "fraction_of_ceiling": round(eps * model_flops / 1e9 / ceiling[dtype_of(name)], 3)})
  import jax
  import torch
  return {
      "dtype": args.dtype, "torch_dtype": args.torch_dtype or args.dtype,
      "variant": args.variant, "input": f"{args.channels}x{args.samples}",
      "rope_mode": args.rope_mode, "reps": args.reps, "xla_flags": args.xla_flags,
      "omp_wait_policy": args.omp_wait_policy,
      "ceiling_gflop_per_s": {d: round(v, 1) for d, v in ceiling.items()},
      "ceiling_by_framework": {d: {n: round(v, 1) for n, v in c.items()}
                               for d, c in ceiling_by.items()},
      "rows": rows, "setup_seconds": setup, "loadavg_1_5_15": results["load"],
      "machine": f"{cpu_features.cpu_info()[0]}, {os.cpu_count()} cores",
      "cpu_path": cpu_features.describe(jax.default_backend()),
      "versions": {"jax": jax.__version__, "torch": torch.__version__},
  }


def print_table(summary) -> None:
  print(f"\n{summary['variant']} {summary['input']} JAX {summary['dtype']}, PyTorch "
        f"{summary['torch_dtype']}  ceiling GFLOP/s "
        f"{summary['ceiling_gflop_per_s']}  load {summary['loadavg_1_5_15']}")
  print(f"{summary['machine']}; {summary['cpu_path']}")
  print(f"{'task':12} {'framework':14} {'batch':>5} {'ex/s':>8} {'vs eager':>9} "
        f"{'GFLOP/s':>8} {'ceiling':>8}")
  for r in summary["rows"]:
    if "examples_per_s" not in r:
      print(f"{r['task']:12} {r['framework']:14} {r['status']}")
      continue
    print(f"{r['task']:12} {r['framework']:14} {r['batch']:5d} {r['examples_per_s']:8.2f} "
          f"{r['vs_torch_eager'] or float('nan'):9.3f} {r['model_gflop_per_s']:8.1f} "
          f"{r['fraction_of_ceiling']:8.1%}")


def main():
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--tasks", default="pretrain:16,eval:1,eval:64",
                 help="comma-separated kind:batch, kind in " + ", ".join(KINDS))
  p.add_argument("--frameworks", default="jax,torch")
  p.add_argument("--train_batch", type=int, default=16)
  p.add_argument("--reps", type=int, default=5)
  p.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
  p.add_argument("--torch_dtype", default="", choices=("", "float32", "bfloat16"),
                 help="compute dtype of the PyTorch workers (default: --dtype)")
  p.add_argument("--variant", default="tiny", choices=sorted(flops_lib.VARIANTS))
  p.add_argument("--rope_mode", default="released")
  p.add_argument("--channels", type=int, default=16)
  p.add_argument("--samples", type=int, default=1000)
  p.add_argument("--xla_flags", default="", help="XLA_FLAGS for the JAX worker only")
  p.add_argument("--omp_wait_policy", default="PASSIVE",
                 help="OMP_WAIT_POLICY of the PyTorch workers ('' keeps the default). On a "
                      "shared machine the default spinning barriers can be 100x slower")
  p.add_argument("--json", default="", help="also write the summary to this file")
  p.add_argument("--worker", default="", help=argparse.SUPPRESS)
  args = p.parse_args()
  for t in args.tasks.split(","):
    try:
      parse_task(t, args.train_batch)
    except ValueError as e:
      p.error(str(e))
  if args.samples % 20:
    p.error(f"--samples {args.samples} is not a multiple of the patch size 20")
  if args.worker:
    worker_main(args)
    return
  summary = run_parent(args)
  print_table(summary)
  if args.json:
    atomic_io.write_json(args.json, summary)


if __name__ == "__main__":
  sys.exit(extras.run_cli(main))
