#!/usr/bin/env bash
# One experiment end to end: train -> analyze -> IB bound -> figures and report.
# usage: scripts/reproduce.sh EXPERIMENT.toml [OUT_DIR]
# Estimators: the paper's fixed binning on the 12-bit task, per-layer binning on MNIST (whose
# layers need not stay in [-1, 1]); KDE bounds on every 4th logged epoch (σ² per dataset:
# 1e-3 on the 12-bit task, 0.1 on MNIST, as Saxe et al.). An experiment file asks for more with
# comment lines `# reproduce: analyze --estimator NAME [--set key=value ...]`, run after these.
set -euo pipefail
exp=$1 out=${2:-runs}
bin=$(dirname "$0")/../.venv/bin
read -r name dataset < <("$bin/python" -c '
import sys, tomllib
c = tomllib.load(open(sys.argv[1], "rb"))
print(c["name"], c["dataset"])' "$exp")
cells="$out/$name"
binning=binning
[ "$dataset" = tishby12 ] || binning=binning-layer
"$bin/ibrepro" train "$exp" --out "$out"
"$bin/ibrepro" analyze "$cells" --estimator "$binning"
"$bin/ibrepro" analyze "$cells" --estimator kde --set every=4
sed -n 's/^# reproduce: analyze //p' "$exp" | while read -r -a extra; do
  "$bin/ibrepro" analyze "$cells" "${extra[@]}"
done
"$bin/ibrepro" bound "$cells"
"$bin/ibrepro" report "$cells"
echo "figures: $cells/figures/index.html   report: $cells/report.html"
