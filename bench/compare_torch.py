"""JAX vs PyTorch TinyMyo at the same work: pretraining step and eval forward, A/B/A/B.

  python bench/compare_torch.py [--tasks train,eval1,eval64] [--train_batch 16] [--reps 5]
      [--dtype float32|bfloat16] [--frameworks jax,torch,torch_compile] [--rope_mode released]
      [--xla_flags "..."] [--json OUT.json]

One long-lived worker process per framework builds the model, compiles and warms up each task;
the parent then asks the workers in turn (A, B, A, B, ...) to time one repetition, so machine
load drifts hit every framework alike. Each repetition also measures the ceiling: a 2048^3
matmul in fp32 and bf16, in both frameworks (the best of the two counts). Figures: median
examples/s over the repetitions, ratio to PyTorch eager, and achieved model FLOP/s as a fraction
of the ceiling of its compute dtype (`--torch_dtype` may differ from `--dtype`). Model FLOPs
are counted analytically (`bench/flops.py`).

Training step = the pretraining objective on both sides: a random 50% patch mask per example,
forward with dropouts, SmoothL1(masked) + 0.1 SmoothL1(visible), backward, global-norm clip 3,
AdamW (b2 0.98, weight decay 0.01 on matrices). bf16 means bf16 compute with fp32 params: the
JAX model's `dtype="bfloat16"`, `torch.autocast("cpu", torch.bfloat16)` on the PyTorch side.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench import flops as flops_lib  # noqa: E402
from tinymyo_jax import atomic_io, extras  # noqa: E402

TASKS = {"train": "train", "eval1": ("eval", 1), "eval64": ("eval", 64)}
MIN_REP_SECONDS = 1.0  # a repetition repeats the call until it lasts at least this long


# ----------------------------------------------------------------------------- workers


class JaxWorker:
  """Compiled JAX steps (the trainer's own code path) for each task."""

  def __init__(self, args):
    import functools

    import jax
    from flax import nnx

    from configs import pretrain
    from tinymyo_jax import sharding, steps, train
    from tinymyo_jax.tasks import pretrain as pretrain_task

    self.jax = jax
    config = pretrain.get_config("default").unlock()
    config.model.variant, config.model.dtype = args.variant, args.dtype
    config.model.rope_mode = args.rope_mode
    config.batch_size = args.train_batch
    mesh = sharding.make_mesh(-1, 1)
    tx, schedule = train.make_optimizer(config)
    graphdef, self.state = train.init_state(train.model_config_from(config), mesh, tx,
                                            config.seed)
    loss_fn = functools.partial(pretrain_task.pretrain_loss, mask_ratio=0.5, visible_weight=0.1)
    self.train_step = jax.jit(steps.make_train_step(graphdef, tx, loss_fn, schedule),
                              donate_argnums=(0,))

    def forward(params, x):
      return nnx.merge(graphdef, params)(x)

    self.forward = jax.jit(forward)
    self.mesh, self.sharding = mesh, sharding
    self.key = jax.random.key(0)

  def batch(self, b, args):
    x = np.random.default_rng(0).uniform(-1, 1, (b, args.channels, args.samples))
    return self.sharding.host_to_global(self.mesh, {"emg": x.astype(np.float32)})

  def make(self, task, args):
    """A zero-argument callable that runs one step of `task` to completion."""
    if task == "train":
      batch = self.batch(args.train_batch, args)

      def run():
        self.state, metrics = self.train_step(self.state, batch, self.key)
        self.jax.block_until_ready(metrics)
      return run
    x = self.batch(task[1], args)["emg"]
    return lambda: self.forward(self.state["params"], x).block_until_ready()

  def matmul(self, dtype: str):
    import jax.numpy as jnp
    a = jnp.asarray(np.random.default_rng(1).standard_normal((2048, 2048)), dtype)
    f = self.jax.jit(lambda u, v: u @ v)
    return lambda: f(a, a).block_until_ready()


class TorchWorker:
  """The same steps on `export/torch_model.py`, eager or under `torch.compile`."""

  def __init__(self, args, compiled: bool):
    import torch

    from export.torch_model import TorchConfig, build

    torch.set_num_threads(os.cpu_count() or 1)
    torch.manual_seed(0)
    self.torch = torch
    self.model = build(TorchConfig(
        num_layers=flops_lib.VARIANTS[args.variant]["num_layers"], rope_mode=args.rope_mode,
        embed_dim=flops_lib.VARIANTS[args.variant]["embed_dim"],
        num_heads=flops_lib.VARIANTS[args.variant]["num_heads"],
        mlp_ratio=flops_lib.VARIANTS[args.variant]["mlp_ratio"]))
    decay = [p for p in self.model.parameters() if p.ndim >= 2 and p.shape[0] != 1]
    rest = [p for p in self.model.parameters() if not (p.ndim >= 2 and p.shape[0] != 1)]
    self.opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01},
                                  {"params": rest, "weight_decay": 0.0}],
                                 lr=1e-4, betas=(0.9, 0.98), eps=1e-8)
    self.net = torch.compile(self.model) if compiled else self.model
    self.autocast = dict(device_type="cpu", dtype=torch.bfloat16,
                         enabled=args.dtype == "bfloat16")

  def loss(self, x):
    torch = self.torch
    b, c, t = x.shape
    n = c * (t // 20)
    ranks = torch.rand(b, n).argsort(-1).argsort(-1)
    mask = ranks < int(0.5 * n)
    with torch.autocast(**self.autocast):
      pred = self.net(x, mask)
    target = x.reshape(b, n, 20)
    elem = torch.nn.functional.smooth_l1_loss(pred.float(), target, reduction="none")
    m = mask[..., None].expand_as(elem).float()
    masked = (elem * m).sum() / m.sum().clamp_min(1)
    visible = (elem * (1 - m)).sum() / (1 - m).sum().clamp_min(1)
    return masked + 0.1 * visible

  def make(self, task, args):
    torch = self.torch
    if task == "train":
      x = torch.from_numpy(np.random.default_rng(0).uniform(
          -1, 1, (args.train_batch, args.channels, args.samples)).astype(np.float32))

      def run():
        self.model.train()
        self.opt.zero_grad(set_to_none=True)
        self.loss(x).backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 3.0)
        self.opt.step()
      return run
    x = torch.from_numpy(np.random.default_rng(0).uniform(
        -1, 1, (task[1], args.channels, args.samples)).astype(np.float32))

    def run_eval():
      self.model.eval()
      with torch.inference_mode(), torch.autocast(**self.autocast):
        self.net(x)
    return run_eval

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
      fns[name] = w.make(TASKS[name], args)
      fns[name]()  # compile / first call
      warm = time_calls(fns[name], 1)
      iters[name] = max(1, int(np.ceil(MIN_REP_SECONDS / max(warm, 1e-6))))
      setup[name] = round(time.perf_counter() - t0, 1)
    except Exception as e:  # noqa: BLE001 - e.g. torch.compile failing on this platform
      setup[name] = f"failed: {type(e).__name__}: {str(e)[:200]}"
  mm = {d: w.matmul(d) for d in ("float32", "bfloat16")}
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
  workers = [Worker(n, args) for n in names]  # set up one at a time: compiles do not overlap
  try:
    for w in workers:
      print(f"[{w.name}] setup: {w.wait_ready()}  (load {load()})", flush=True)
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
    batch = args.train_batch if task == "train" else TASKS[task][1]
    model_flops = flops_lib.model_flops_per_example(
        args.variant, args.channels, args.samples, train=task == "train")
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
      "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
      "versions": {"jax": jax.__version__, "torch": torch.__version__},
  }


def print_table(summary) -> None:
  print(f"\n{summary['variant']} {summary['input']} JAX {summary['dtype']}, PyTorch "
        f"{summary['torch_dtype']}  ceiling GFLOP/s "
        f"{summary['ceiling_gflop_per_s']}  load {summary['loadavg_1_5_15']}")
  print(f"{'task':8} {'framework':14} {'batch':>5} {'ex/s':>8} {'vs eager':>9} "
        f"{'GFLOP/s':>8} {'ceiling':>8}")
  for r in summary["rows"]:
    if "examples_per_s" not in r:
      print(f"{r['task']:8} {r['framework']:14} {r['status']}")
      continue
    print(f"{r['task']:8} {r['framework']:14} {r['batch']:5d} {r['examples_per_s']:8.2f} "
          f"{r['vs_torch_eager'] or float('nan'):9.3f} {r['model_gflop_per_s']:8.1f} "
          f"{r['fraction_of_ceiling']:8.1%}")


def main():
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--tasks", default="train,eval1,eval64")
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
    if t not in TASKS:
      p.error(f"unknown task {t!r}; expected some of {sorted(TASKS)}")
  if args.worker:
    worker_main(args)
    return
  summary = run_parent(args)
  print_table(summary)
  if args.json:
    atomic_io.write_json(args.json, summary)


if __name__ == "__main__":
  sys.exit(extras.run_cli(main))
