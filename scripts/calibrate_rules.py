"""Print how often each claim's rule says "supported" on synthetic runs with and without the
effect (`ibrepro.claims.calibration`): a calibrated rule gives at most 5 % on every null
scenario and at least 80 % on every effect scenario.

    python scripts/calibrate_rules.py [--draws 1000] [--claim iii ...]
                                      [--from CELL.mi.h5 [--group NAME]] [--rule name=value ...]

--from measures the epoch-to-epoch and seed-to-seed noise on real estimates (hidden layers
3 and deeper, where the curves move) and runs the scenarios at that noise instead of the
built-in levels; both are printed. The rule's bootstrap makes each draw cost a few ms, so 1000
draws of all scenarios take a minute or two on two cores, except claim iii's noisy-label
scenarios: each draw measures 40 synthetic encoders against their permutation null (about
50 ms a draw). --claim runs only the named claims.
"""

from __future__ import annotations

import argparse
import time

import h5py
import numpy as np

from ibrepro.claims import calibration
from ibrepro.claims.rules import parse_rules


def measured_noise(path: str, group: str | None) -> calibration.Noise:
    with h5py.File(path, "r") as f:
        name = group or next(n for n in f if n.startswith("binning_"))
        g = f[name]
        epochs, ixt, ity = g["epochs"][()], g["ixt"][()], g["ity"][()]
    print(f"noise measured on {path} group {name}: {ixt.shape[0]} seeds, {epochs.size} logged epochs")
    return calibration.measure_noise(epochs, ixt[:, :, 2:-1], ity[:, :, 2:-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--from", dest="source", default=None)
    parser.add_argument("--group", default=None)
    parser.add_argument("--rule", action="append", default=[])
    parser.add_argument("--claim", action="append", choices=sorted(calibration.SCENARIOS), default=[])
    args = parser.parse_args()
    rules = parse_rules(args.rule)
    noise = calibration.NOISE
    print(f"built-in noise (bits): {noise}")
    if args.source:
        noise = measured_noise(args.source, args.group)
        print(f"measured noise (bits): {noise}")
    print(f"{args.draws} draws per scenario, {calibration.SEEDS} seeds, {calibration.EPOCHS.size} "
          f"logged epochs up to {calibration.EPOCHS[-1]}\n")
    print(f"{'claim':6}{'scenario':26}{'kind':8}{'supported':>10}  {'target':8}{'ok':>4}{'ms/draw':>9}")
    for claim, scenarios in calibration.SCENARIOS.items():
        if args.claim and claim not in args.claim:
            continue
        for name, (effect, scenario) in scenarios.items():
            started = time.perf_counter()
            rate = calibration.supported_rate(scenario, args.draws, args.seed, rules, noise)
            ms = (time.perf_counter() - started) / args.draws * 1e3
            ok = rate >= 0.8 if effect else rate <= 0.05
            print(f"{claim:6}{name:26}{'effect' if effect else 'null':8}{rate:>10.1%}  "
                  f"{'>= 80%' if effect else '<= 5%':8}{'yes' if ok else 'NO':>4}{ms:>9.1f}")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
