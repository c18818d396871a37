"""Training throughput of one run as 1 process and as N JAX processes on this machine.

  python bench/multiprocess.py [--processes 2] [--devices 2] [--rounds 2] [--steps 40]
      [--batch 32] [--variant tiny]

Every layout runs `tinymyo_jax.main` with the same config (masked pretraining on synthetic 8 x 200
windows, so no corpus is needed), the same global batch and the same mesh (`--devices` CPU
devices in all, split over the processes; gloo collectives between processes), and reads the
global `examples_per_sec` of `summary.json` (the first logging interval, which compiles, is not
timed). The layouts alternate, A/B/A/B. Prints one JSON line per run, then the medians with the
examples/s per process.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cpu_model() -> str:
  try:
    out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    return next(line.split(":", 1)[1].strip() for line in out.splitlines()
                if line.startswith("Model name"))
  except (OSError, subprocess.CalledProcessError, StopIteration):
    return platform.processor() or "unknown"


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def run(processes: int, devices: int, workdir: str, args) -> float:
  """Global examples/s of one run as `processes` processes with `devices` devices in all."""
  flags = ["--config=configs/pretrain.py:smoke", f"--workdir={workdir}",
           f"--config.model.variant={args.variant}",
           "--config.data.sources=(('synthetic','8x200:4096',1.0),)",
           f"--config.batch_size={args.batch}", f"--config.total_steps={args.steps}",
           "--config.log_every=5", f"--config.eval_every={args.steps}", "--config.eval_batches=1",
           f"--config.checkpoint_every={args.steps}", f"--config.mesh.data={devices}",
           "--config.mesh.fsdp=1"]
  env = dict(os.environ, PYTHONPATH=REPO,
             XLA_FLAGS=f"--xla_force_host_platform_device_count={devices // processes}")
  port = free_port()
  procs = []
  for i in range(processes):
    multi = ([] if processes == 1 else
             ["--config.distributed=True", f"--coordinator_address=localhost:{port}",
              f"--num_processes={processes}", f"--process_id={i}"])
    procs.append(subprocess.Popen([sys.executable, "-m", "tinymyo_jax.main", *flags, *multi],
                                  cwd=REPO, env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True))
  outs = [p.communicate(timeout=args.timeout)[0] for p in procs]
  if any(p.returncode for p in procs):
    raise SystemExit("a run failed:\n" + "\n".join(o[-2000:] for o in outs))
  with open(os.path.join(workdir, "summary.json")) as f:
    return json.load(f)["examples_per_sec"]


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--processes", type=int, default=2)
  p.add_argument("--devices", type=int, default=2, help="CPU devices in all (the data mesh)")
  p.add_argument("--rounds", type=int, default=2)
  p.add_argument("--steps", type=int, default=40)
  p.add_argument("--batch", type=int, default=32, help="global batch")
  p.add_argument("--variant", default="tiny", help="model variant (tiny = the 3.6 M TinyMyo)")
  p.add_argument("--timeout", type=int, default=1800)
  args = p.parse_args()
  if args.devices % args.processes or args.batch % args.devices:
    p.error(f"--devices {args.devices} must divide over --processes {args.processes} and "
            f"--batch {args.batch} over the devices")
  layouts = [1, args.processes]
  rates = {n: [] for n in layouts}
  with tempfile.TemporaryDirectory() as tmp:
    for r in range(args.rounds):
      for n in layouts:
        eps = run(n, args.devices, os.path.join(tmp, f"r{r}_p{n}"), args)
        rates[n].append(eps)
        print(json.dumps({"round": r, "processes": n, "devices": args.devices,
                          "examples_per_sec": round(eps, 2)}), flush=True)
  print(f"cpu: {cpu_model()}, {os.cpu_count()} cpus; batch {args.batch} (global), 8x200, "
        f"variant {args.variant}, {args.steps} steps, load {os.getloadavg()[0]:.1f}")
  for n in layouts:
    med = statistics.median(rates[n])
    print(f"{n} process(es) x {args.devices // n} device(s): {med:.2f} examples/s in all, "
          f"{med / n:.2f} per process")


if __name__ == "__main__":
  main()
