"""Where one paper cell's training time goes: compile vs steady state, epochs vs snapshots.

Trains the paper cell (DESIGN §9: 12-10-7-5-4-3-2 tanh, Adam 4e-4, batch 256, 85% of tishby12)
through `ibrepro.train.loop.train_cell`, with wall-clock timers wrapped around its stages
(monkeypatched here; the library is unchanged). The compiled calls are waited for inside
their timers, so the stages add up, but snapshot writing no longer overlaps the next
advance as it does in a normal run: the total is an upper bound on a normal run's.

Then, on the same placed data, one compiled epoch with and without gradient statistics is
timed apart; XLA's cost analysis (FLOPs, bytes), the kernels of one minibatch step by role
(forward, backward, loss, Adam, ...; fusions counted as one) and the time of each role's ops in a
jax.profiler trace of a few calls (Python tracer off) are printed; and the plain one-network loop of
scripts/bench_train.py gives the reference ratio. Last, the cell is analysed with the default
(binning) estimator twice, from its stored activations and from a copy holding parameters only,
with timers around plan, read, recompute, estimate and write. The compile cache starts empty unless
`--warm-cache` (then compile times are cache loads).

    .venv/bin/python scripts/profile_train.py [--seeds 10] [--epochs 2000] [--snapshots K]
        [--devices N] [--ref-seeds 2] [--ref-epochs 3] [--repeats 20] [--warm-cache] [--no-analysis] [--trace DIR]
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import functools
import gzip
import importlib
import json
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

FULL_EPOCHS, FULL_SNAPSHOTS = 10_000, 300  # snapshots per 10^4 epochs, as scripts/bench_train.py


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--epochs", type=int, default=2000)
    p.add_argument("--snapshots", type=int, default=0, help="default: 300 per 10^4 epochs, at least 6")
    p.add_argument("--devices", type=int, default=os.cpu_count(), help="host devices (XLA)")
    p.add_argument("--ref-seeds", type=int, default=2, help="seeds the plain loop trains")
    p.add_argument("--ref-epochs", type=int, default=3, help="epochs per seed of the plain loop")
    p.add_argument("--repeats", type=int, default=20, help="timed calls of the one-epoch programs")
    p.add_argument("--warm-cache", action="store_true", help="keep the persistent compile cache")
    p.add_argument("--no-analysis", action="store_true", help="skip the binning-estimate profile")
    p.add_argument("--trace", type=Path, help="write a jax.profiler trace of the training run here")
    return p.parse_args()


ARGS = parse_args()
_CACHE = tempfile.TemporaryDirectory()
if not ARGS.warm_cache:
    os.environ["IBREPRO_JAX_CACHE"] = _CACHE.name
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
_argv, sys.argv = sys.argv, [sys.argv[0], "--devices", str(ARGS.devices)]
bench_train = importlib.import_module("bench_train")  # sets XLA_FLAGS and configure(); the plain loop
sys.argv = _argv

import h5py  # noqa: E402
import jax  # noqa: E402
import numpy as np  # noqa: E402

from ibrepro import config as cfg  # noqa: E402
from ibrepro.analysis import analyze, estimators, stream  # noqa: E402
from ibrepro.train import loop  # noqa: E402
from ibrepro.train.engine import ShardedTrainer  # noqa: E402
from ibrepro.train.schedule import logged_epochs  # noqa: E402
from ibrepro.train.writer import RunWriter  # noqa: E402


class Timers:
    """Wall seconds of every call of each wrapped stage, in call order."""

    def __init__(self):
        self.calls: dict[str, list[float]] = collections.defaultdict(list)
        self.originals: list[tuple[object, str, object]] = []

    def wrap(self, owner, attr: str, label: str, block: bool = False) -> None:
        """Replace owner.attr by a timed version (waiting for JAX results when `block`)."""
        original = getattr(owner, attr)

        @functools.wraps(original)
        def timed(*args, **kwargs):
            start = time.perf_counter()
            out = original(*args, **kwargs)
            if block:
                jax.block_until_ready(out)
            self.calls[label].append(time.perf_counter() - start)
            return out

        self.originals.append((owner, attr, original))
        setattr(owner, attr, timed)

    def restore(self) -> None:
        """Put the wrapped functions back."""
        for owner, attr, original in reversed(self.originals):
            setattr(owner, attr, original)
        self.originals.clear()


def instrument(timers: Timers) -> None:
    """Timers around the stages train_cell runs (module-level names and class methods)."""
    timers.wrap(loop, "prepare", "prepare data")
    timers.wrap(ShardedTrainer, "init", "init state", block=True)
    timers.wrap(ShardedTrainer, "advance", "advance (compiled epochs)", block=True)
    timers.wrap(ShardedTrainer, "evaluate", "evaluate (layers, metrics)", block=True)
    timers.wrap(loop, "recorded_activations", "record activations")
    for method in ("create", "append", "commit", "save_checkpoint", "finish"):
        timers.wrap(RunWriter, method, f"run file: {method}")


def train_profile(config: dict, workdir: Path) -> tuple[Timers, float]:
    """Train the cell with stage timers; (timers, whole train_cell wall seconds)."""
    timers = Timers()
    instrument(timers)
    with jax.profiler.trace(str(ARGS.trace)) if ARGS.trace else contextlib.nullcontext():
        start = time.perf_counter()
        loop.train_cell("cell", config, workdir / "cell.h5")
        total = time.perf_counter() - start  # the trace's export on leaving is not counted
    timers.restore()
    return timers, total


def analysis_profile(run_path: Path, workdir: Path) -> None:
    """The binning estimate of the trained cell, from its stored activations and from its
    parameters alone (a copy of the run file without activations/): wall seconds, and the
    thread-seconds of each stage summed over the worker threads."""
    params_only = workdir / "params-only.h5"
    shutil.copy(run_path, params_only)
    with h5py.File(params_only, "a") as run:
        del run["activations"]
    for label, path in (("stored activations", run_path), ("parameters only", params_only)):
        timers = Timers()
        timers.wrap(analyze, "plan_path", "plan (open, check)")
        timers.wrap(stream, "_all_layers", "recompute (forward pass)")
        timers.wrap(stream, "_read", "read block (incl. recompute)")
        timers.wrap(stream, "_estimate_block", "read + estimate block")
        timers.wrap(analyze, "write_groups", "write estimates")
        start = time.perf_counter()
        analyze.analyze_path(path, [estimators.DEFAULT], progress=False)
        total = time.perf_counter() - start
        timers.restore()
        print(f"\nanalysis, {estimators.DEFAULT} from {label}: wall {total:.2f} s "
              f"(thread-seconds per stage, {stream.default_workers()} worker threads):")
        print(f"  {'stage':30s} {'calls':>5s} {'first s':>8s} {'rest s':>8s}")
        for stage, calls in timers.calls.items():
            print(f"  {stage:30s} {len(calls):5d} {calls[0]:8.3f} {sum(calls[1:]):8.3f}")
        block, read = (timers.calls[k] for k in ("read + estimate block", "read block (incl. recompute)"))
        rest = sum(block[1:]) - sum(read[1:])
        print(f"  {'estimate (block - read)':30s} {'':5s} {block[0] - read[0]:8.3f} {rest:8.3f}")


COMPILED = ("init", "advance", "evaluate", "record")  # stages whose first call compiles


def print_stages(timers: Timers, total: float, config: dict) -> float:
    """The stage table; returns the steady seconds per seed-epoch of the compiled advance."""
    seeds = config["train"]["seeds"]
    schedule = logged_epochs(config["train"]["epochs"], config["log"]["snapshots"])
    gaps = np.diff(schedule)
    advance = timers.calls["advance (compiled epochs)"]
    steady = sum(advance[1:]) / (seeds * gaps[1:].sum())
    compile_estimate = advance[0] - steady * seeds * gaps[0]
    print(f"\nstages of train_cell ({seeds} seeds x {schedule[-1]} epochs, {len(schedule)} snapshots), "
          f"wall {total:.2f} s:")
    print(f"  {'stage':34s} {'calls':>5s} {'first s':>8s} {'rest s':>8s} {'share':>6s}")
    for label, calls in timers.calls.items():
        print(f"  {label:34s} {len(calls):5d} {calls[0]:8.3f} {sum(calls[1:]):8.3f} {sum(calls) / total:6.1%}")
    other = total - sum(sum(c) for c in timers.calls.values())
    print(f"  {'other (copies, host transfer, py)':34s} {'':5s} {'':8s} {other:8.3f} {other / total:6.1%}")
    print(f"  advance steady state: {steady * 1e3:.4f} ms per seed-epoch ({gaps[1:].sum()} epochs x {seeds} "
          f"seeds in {len(advance) - 1} calls); first call {advance[0]:.2f} s ~ {compile_estimate:.2f} s "
          f"compile + {advance[0] - compile_estimate:.2f} s epochs")
    first = sum(calls[0] for label, calls in timers.calls.items() if label.split(" ")[0] in COMPILED)
    training = sum(advance[1:])
    print(f"  summary: first calls of the compiled stages (compile + 1 run) {first:.2f} s ({first / total:.0%}), "
          f"later advances {training:.2f} s ({training / total:.0%}), everything else (snapshots: evaluate, "
          f"record, write, copies) {total - first - training:.2f} s ({(total - first - training) / total:.0%})")
    evaluate = timers.calls["evaluate (layers, metrics)"]
    print(f"  evaluate: first call {evaluate[0]:.2f} s (compile), then {np.mean(evaluate[1:]) * 1e3:.1f} ms "
          f"per snapshot")
    return steady


def epoch_programs(config: dict) -> dict:
    """One compiled epoch of all seeds, with and without gradient statistics, on the cell's
    placed data: {with_stats: (compiled, args)}."""
    arrays = loop.prepare(config)
    trainer = loop.make_trainer(config, arrays)
    seeds_n = config["train"]["seeds"]
    sharded = loop._sharded(trainer, seeds_n)
    shared, seeds = sharded.place(
        loop.SharedData(arrays.x_pool, arrays.y_pool, arrays.x_eval, arrays.y_eval),
        loop.SeedData(loop.seed_keys(config["train"]["seed"], seeds_n), arrays.train_idx, arrays.test_weight))
    state = sharded.init(seeds, arrays.x_pool.shape[1])
    keys = jax.vmap(jax.random.fold_in, in_axes=(0, None))(seeds.key, 1)
    programs = {}
    for with_stats in (False, True):
        epoch = jax.vmap(functools.partial(trainer.epoch, with_stats=with_stats), in_axes=(0, 0, None, 0))
        jitted = jax.jit(epoch, in_shardings=(sharded.per_seed, sharded.per_seed, sharded.replicated,
                                              sharded.per_seed), out_shardings=sharded.per_seed)
        start = time.perf_counter()
        compiled = jitted.lower(state, keys, shared, seeds).compile()
        programs[with_stats] = (compiled, (state, keys, shared, seeds), time.perf_counter() - start)
    return programs, trainer


FREE_OPS = {"parameter", "get-tuple-element", "tuple", "constant", "bitcast"}  # no kernel at run time


ROLES = (  # (role, op_name test) in order: the first that matches names a kernel's role
    ("backward (MLP)", lambda name: "transpose(jvp(MLP))" in name),
    ("forward (MLP)", lambda name: "jvp(MLP)" in name),
    ("loss (softmax CE)", lambda name: "jvp(" in name),
    ("minibatch rows", lambda name: "gather" in name or "dynamic_slice" in name),
    ("Adam update", lambda name: name.endswith(("closed_call/add", "closed_call/pow"))),
    ("other (loop, copies)", lambda name: True),  # unnamed: loop-carry copies, split reductions
)


def hlo_computations(hlo: str) -> dict[str, list[tuple[str, str, str, str]]]:
    """{computation: [(instruction, opcode, output shape, role)]} of a compiled module's text,
    ops that run no kernel left out; the role is read from the op's JAX name (op_name)."""
    computations, name = {}, None
    for line in hlo.splitlines():
        if line and not line.startswith(" "):
            name = line.split(" ")[0].lstrip("%") if line.endswith("{") else None
            computations[name] = []
        elif name is not None:
            match = re.match(r"\s+(?:ROOT )?%(\S+) = (\S+?)(?:\{[^}]*\})? ([\w-]+)\(", line)
            if match and match.group(3) not in FREE_OPS:
                op_name = re.search(r'op_name="([^"]*)"', line)
                op_name = op_name.group(1) if op_name else ""
                role = next(role for role, test in ROLES if test(op_name))
                computations[name].append((match.group(1), match.group(3), match.group(2), role))
    return computations


def step_body(hlo: str) -> tuple[str, str]:
    """(while instruction, body computation) of the scan over minibatches: the largest loop body."""
    loops = re.findall(r"%(while[.\d]*) = .*?body=%([^ ,]+)", hlo)
    computations = hlo_computations(hlo)
    return max(loops, key=lambda loop: len(computations.get(loop[1], [])))


def step_kernels(hlo: str) -> list[tuple[str, str, str]]:
    """(opcode, output shape, role) of every op run per minibatch step, a fusion counted as one."""
    return [(op, shape, role) for _, op, shape, role in hlo_computations(hlo)[step_body(hlo)[1]]]


def op_times(compiled, args: tuple, calls: int = 5) -> tuple[dict[str, float], float]:
    """Seconds per call (and wall seconds per traced call) spent in each role's XLA ops (summed over devices), from a
    jax.profiler trace of `calls` calls (Python tracer off): ops of the minibatch scan by
    their role, ops outside it as "outside the scan (shuffle, stats)"; loop ops themselves
    are not counted (their contents are)."""
    hlo = compiled.as_text()
    step = step_body(hlo)[1]
    role_of = {inst: ("cross-device all-reduce" if op.startswith("all-reduce") else
                      role if comp == step else "outside the scan (shuffle, stats)")
               for comp, ops in hlo_computations(hlo).items() for inst, op, _, role in ops if op != "while"}
    options = jax.profiler.ProfileOptions()
    options.python_tracer_level = 0
    with tempfile.TemporaryDirectory() as tmp:
        with jax.profiler.trace(tmp, profiler_options=options):
            start = time.perf_counter()
            for _ in range(calls):
                jax.block_until_ready(compiled(*args))
            wall = (time.perf_counter() - start) / calls
        trace = next(Path(tmp).glob("plugins/profile/*/*.trace.json.gz"))
        events = json.load(gzip.open(trace))["traceEvents"]
    totals = collections.Counter()
    for event in events:
        if event.get("ph") == "X" and event["name"] in role_of:
            totals[role_of[event["name"]]] += event.get("dur", 0) * 1e-6 / calls
    return dict(totals), wall


def shape_bytes(shape: str) -> int:
    """Bytes of an HLO array shape such as f32[5,256,10] (4-byte elements assumed)."""
    dims = re.findall(r"\d+", shape.split("[", 1)[1]) if "[" in shape else []
    return 4 * int(np.prod([int(d) for d in dims]))


def print_programs(programs: dict, trainer, seeds: int) -> None:
    """Compile time, steady time, cost analysis and kernel list of the one-epoch programs."""
    print(f"\none compiled epoch of {seeds} seeds ({trainer.n_steps} minibatch steps per epoch), "
          f"{ARGS.repeats} timed calls:")
    times = {}
    for with_stats, (compiled, args, compile_s) in programs.items():
        jax.block_until_ready(compiled(*args))
        start = time.perf_counter()
        for _ in range(ARGS.repeats):
            jax.block_until_ready(compiled(*args))
        times[with_stats] = (time.perf_counter() - start) / (ARGS.repeats * seeds)
        cost = compiled.cost_analysis()
        cost = cost[0] if isinstance(cost, list) else cost
        flops, moved = cost.get("flops", float("nan")), cost.get("bytes accessed", float("nan"))
        label = "with grad stats" if with_stats else "plain epoch"
        print(f"  {label:16s}: compile {compile_s:5.2f} s; {times[with_stats] * 1e3:.4f} ms per seed-epoch; "
              f"XLA cost {flops / 1e6:.3f} MFLOP, {moved / 2**20:.2f} MiB accessed per call "
              f"per device (a loop body counts once: ~ one minibatch step)")
    stats_cost = times[True] - times[False]
    print(f"  gradient statistics: {stats_cost * 1e3:.4f} ms per seed per snapshot "
          f"({stats_cost / times[False]:.0%} of an epoch)")
    step = step_kernels(programs[False][0].as_text())
    per_device = seeds // len(programs[False][1][0].grad_stats.sharding.device_set)
    call = times[False] * seeds  # wall seconds of one epoch call, all devices in parallel
    print(f"  kernels per minibatch step ({len(step)}, fusions counted once; per device, {per_device} seeds): "
          f"{call / (trainer.n_steps * len(step)) * 1e6:.2f} us per kernel per device on average")
    print(f"    {'role':20s} {'kernels':>7s} {'dots':>5s} {'output KiB':>10s}  dot outputs")
    for role, _ in ROLES:
        ops = [(op, shape) for op, shape, r in step if r == role]
        dots = [shape for op, shape in ops if op == "dot"]
        print(f"    {role:20s} {len(ops):7d} {len(dots):5d} {sum(shape_bytes(sh) for _, sh in ops) / 2**10:10.1f}  "
              f"{' '.join(dots)}")
    spent, wall = op_times(programs[False][0], programs[False][1])
    busy = wall * len(jax.devices())
    print(f"  XLA op time per epoch call, summed over devices (jax.profiler trace of 5 calls, {wall * 1e3:.2f} ms "
          f"wall per traced call x {len(jax.devices())} devices = {busy * 1e3:.2f} device-ms):")
    for role, seconds in sorted(spent.items(), key=lambda item: -item[1]):
        print(f"    {role:34s} {seconds * 1e3:7.2f} ms {seconds / busy:6.1%}")
    idle = busy - sum(spent.values())
    print(f"    {'(in no op: dispatch, loop control)':34s} {idle * 1e3:7.2f} ms {idle / busy:6.1%}")
    widths = [12, 10, 7, 5, 4, 3, 2]
    macs = sum(a * b for a, b in zip(widths, widths[1:]))
    per_row = 3 * 2 * macs  # forward + backward
    print(f"  analytic matmul compute: {per_row * trainer.n_train / 1e6:.2f} MFLOP per seed-epoch "
          f"(3 x 2 x {macs} MAC x {trainer.n_train} rows), {per_row * trainer.batch_size * per_device / 1e6:.2f} "
          f"MFLOP per step per device; measured rate {per_row * trainer.n_train / times[False] / 1e9:.2f} GFLOP/s "
          f"over {len(jax.devices())} device(s)")


def main() -> None:
    snapshots = ARGS.snapshots or max(6, round(FULL_SNAPSHOTS * ARGS.epochs / FULL_EPOCHS))
    raw = {**bench_train.paper_cell(ARGS.epochs, ARGS.seeds), "log": {"snapshots": snapshots, "activations": True}}
    config = cfg.resolve(raw)
    print(f"jax {jax.__version__}, {len(jax.devices())} host devices, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.2f}; compile cache {'warm' if ARGS.warm_cache else 'empty'}")
    with tempfile.TemporaryDirectory() as tmp:
        timers, total = train_profile(config, Path(tmp))
        steady = print_stages(timers, total, config)
        if not ARGS.no_analysis:
            analysis_profile(Path(tmp) / "cell.h5", Path(tmp))
    programs, trainer = epoch_programs(config)
    print_programs(programs, trainer, ARGS.seeds)
    ref = bench_train.plain_reference(config, ARGS.ref_seeds, ARGS.ref_epochs)
    per_seed_epoch = total / (ARGS.seeds * ARGS.epochs)
    print(f"\nplain loop ({ARGS.ref_seeds} seeds x {ARGS.ref_epochs} epochs, jitted step): {ref * 1e3:.3f} ms per "
          f"seed-epoch; ratio plain / pipeline: {ref / steady:.1f}x steady advance, "
          f"{ref / per_seed_epoch:.1f}x whole train_cell (startup, snapshots, blocking timers incl.)")
    print(f"load average at the end {os.getloadavg()[0]:.2f}")
    if ARGS.trace:
        print(f"trace: {ARGS.trace} (open with TensorBoard's profile plugin or xprof)")


if __name__ == "__main__":
    main()
