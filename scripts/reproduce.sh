#!/usr/bin/env bash
# One experiment end to end: train -> analyze -> IB bound -> figures and report.
# usage: scripts/reproduce.sh EXPERIMENT.toml [OUT_DIR]
# Estimators: the paper's fixed binning on the 12-bit task, per-layer binning on MNIST (whose
# layers need not stay in [-1, 1]); exact MI when every cell is quantized or binary; KDE
# bounds on every 4th logged epoch (σ² per dataset: 1e-3 on the 12-bit task, 0.1 on MNIST, as
# Saxe et al.); for experiments named *-estimators also kNN and matrix-based Rényi on every
# 4th logged epoch (the estimator comparison).
# An experiment with noisy labels (data.gamma > 0 in any cell) gets binning and KDE again with
# soft labels (I(T;Y) from p(y|x)), the estimates its IB-bound claim is judged on.
# An experiment file asks for more with comment lines
# `# reproduce: analyze --estimator NAME [--set key=value ...]`, run after these.
# A stage that finished is skipped on a re-run (stamp OUT/<name>/.done-<stage>, newer than the
# experiment file); training itself resumes interrupted cells. Stage times are printed at the end.
set -euo pipefail
exp=$1 out=${2:-runs}
bin=$(dirname "$0")/../.venv/bin
read -r name dataset discrete noisy < <("$bin/python" -c '
import sys, tomllib
c = tomllib.load(open(sys.argv[1], "rb"))
m, s = c.get("model", {}), c.get("sweep", {})
bits = s.get("model.quantize_bits", [m.get("quantize_bits", 0)])
acts = s.get("model.activation", [m.get("activation", "tanh")])
gammas = [c.get("data", {}).get("gamma", 0), *s.get("data.gamma", [])]
print(c["name"], c["dataset"], int(min(bits) > 0 or set(acts) == {"sign"}), int(any(g > 0 for g in gammas)))' "$exp")
cells="$out/$name"
binning=binning
[ "$dataset" = tishby12 ] || binning=binning-layer
timings=()

stage() {  # stage NAME COMMAND...: run COMMAND unless NAME is done, and time it
    local stage=$1 stamp="$cells/.done-$1" start
    shift
    if [ -f "$stamp" ] && [ "$stamp" -nt "$exp" ]; then
        timings+=("$stage: done before, skipped")
        return
    fi
    start=$(date +%s)
    "$@"
    mkdir -p "$cells" && touch "$stamp"
    timings+=("$stage: $(( $(date +%s) - start )) s")
}

stage train "$bin/ibrepro" train "$exp" --out "$out"
stage analyze-binning "$bin/ibrepro" analyze "$cells" --estimator "$binning"
# quantized or binary networks (every cell): the exact estimator too, which the report then uses
[ "$discrete" = 0 ] || stage analyze-exact "$bin/ibrepro" analyze "$cells" --estimator exact
stage analyze-kde "$bin/ibrepro" analyze "$cells" --estimator kde --set every=4
case $name in
*-estimators) stage analyze-knn-renyi "$bin/ibrepro" analyze "$cells" --estimator knn --estimator renyi --set every=4 ;;
esac
if [ "$noisy" = 1 ]; then
    stage analyze-binning-soft "$bin/ibrepro" analyze "$cells" --estimator "$binning" --set labels=soft
    stage analyze-kde-soft "$bin/ibrepro" analyze "$cells" --estimator kde --set every=4 --set labels=soft
fi
extra=0
while read -r -a args; do
    extra=$((extra + 1))
    stage "analyze-extra-$extra" "$bin/ibrepro" analyze "$cells" "${args[@]}"
done < <(sed -n 's/^# reproduce: analyze //p' "$exp")
stage bound "$bin/ibrepro" bound "$cells"
stage claims "$bin/ibrepro" claims "$cells"
stage report "$bin/ibrepro" report "$cells"
echo "figures: $cells/figures/index.html   report: $cells/report.html"
echo "stage times ($name):"
printf '  %s\n' "${timings[@]}"
