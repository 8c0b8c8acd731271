#!/usr/bin/env bash
# One experiment end to end: train -> analyze -> IB bound -> figures and report.
# usage: scripts/reproduce.sh EXPERIMENT.toml [OUT_DIR]
# Estimates: the defaults every experiment gets and the runs its [reproduce] table asks for,
# as `python -m ibrepro.reproduce_plan` lists them (checked before any stage runs).
# A stage that finished is skipped on a re-run (stamp OUT/<name>/.done-<stage>, newer than the
# experiment file); training itself resumes interrupted cells. Stage times are printed at the end
# and appended to OUT/<name>/stage-times.tsv (stage, seconds), which plan_reproduce.py --measured reads.
set -euo pipefail
exp=$1 out=${2:-runs}
bin=$(dirname "$0")/../.venv/bin
plan=$("$bin/python" -m ibrepro.reproduce_plan "$exp")  # line 1: the name; then: stage, analyze args
name=$(head -n 1 <<<"$plan")
cells="$out/$name"
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
    local seconds=$(( $(date +%s) - start ))
    mkdir -p "$cells" && touch "$stamp"
    printf '%s\t%s\n' "$stage" "$seconds" >>"$cells/stage-times.tsv"
    timings+=("$stage: $seconds s")
}

stage train "$bin/ibrepro" train "$exp" --out "$out"
while IFS=$'\t' read -r -a run <&3; do
    stage "${run[0]}" "$bin/ibrepro" analyze "$cells" "${run[@]:1}"
done 3< <(tail -n +2 <<<"$plan")
stage bound "$bin/ibrepro" bound "$cells"
stage claims "$bin/ibrepro" claims "$cells"
stage report "$bin/ibrepro" report "$cells"
echo "figures: $cells/figures/index.html   report: $cells/report.html"
echo "stage times ($name):"
printf '  %s\n' "${timings[@]}"
