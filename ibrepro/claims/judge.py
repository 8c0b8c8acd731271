"""`ibrepro claims`: judge the paper's claims on every estimate group of a cell, into
`<cell>.claims.json`; claim iv across the cells of a depth sweep, into the experiment's
`claims.json` (DESIGN §7).

Per estimate group: claims i (compression), ii (onset at the drift->diffusion transition),
iii (IB bound, on soft-label groups when labels are noisy; with noisy labels also the
beta -> inf self-consistency on the group's own partition) and v (late fall of I(T;Y) with
little data), each with its measured numbers (95 % bootstrap intervals over
seeds), rule, thresholds, verdict and reason, and a per-layer table. A run whose training did
not fit (final train accuracy near chance, or a diverged loss) gets "not applicable" throughout.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

import ibrepro
from ibrepro import config as cfg
from ibrepro.analysis.cell import find_cells
from ibrepro.analysis.results import CellResults
from ibrepro.claims import caveats, claimsfile, marks, phases
from ibrepro.claims import rules as claim_rules
from ibrepro.claims.inputs import Group, activations_at, global_ranges, load_groups
from ibrepro.claims.rules import Rules
from ibrepro.claims.selfconsistency import layer_measures, partition_of
from ibrepro.claims.verdicts import NOT_APPLICABLE, interval, training_fit
from ibrepro.data.labels import is_deterministic
from ibrepro.ib.bound import data_distribution
from ibrepro.layout import claims_path, estimates_path


def judge_path(path: str | Path, estimators: tuple[str, ...] = (), rules: Rules = Rules()) -> list[Path]:
    """Judge a cell file or every cell of an experiment directory; returns the files written.

    A directory also gets `claims.json` (claim iv across cells of different depth)."""
    path = Path(path)
    runs = find_cells(path)
    cells = [load_groups(run, estimators) for run in runs]
    depth_sweep = path.is_dir() and _has_depth_sweep([c for c, _ in cells])
    written = [claimsfile.write(claims_path(run), judge_cell(cell, groups, rules, depth_sweep))
               for run, (cell, groups) in zip(runs, cells)]
    if path.is_dir():
        written.append(claimsfile.write(path / claimsfile.EXPERIMENT_NAME, judge_depth(cells, rules)))
    return written


def judge_cell(cell: CellResults, groups: list[Group], rules: Rules, depth_sweep: bool = False) -> dict:
    """The claims document of one cell."""
    config = cell.config
    n_hidden = len(config["model"]["hidden"])
    y = cell.run.y
    fit = training_fit(cell.metrics.get("train_acc"), cell.metrics.get("train_loss"),
                       float(np.bincount(y).max() / y.size), rules.fit_margin)
    drift, why_no_drift = _drift(cell)
    p_x, p_y_given_x = data_distribution(config, y)
    deterministic = is_deterministic(p_y_given_x)  # then self-consistency is not applicable
    acts = {}  # the activations at each group's last epoch, read once per epoch (noisy labels only)
    binning = next((g.params for g in groups if g.estimator == "binning"), None)
    out_groups = {}
    for group in groups:
        partition = partition_of(group.estimator, group.params, binning)
        measures = None
        if not deterministic and group.labels == "soft":  # noisy labels: only soft groups are judged
            last = int(group.epochs[-1])
            if last not in acts:
                acts[last] = activations_at(cell.path, np.arange(_n_seeds(cell)), last)
            span = (global_ranges(cell.path, group.seeds)
                    if group.params.get("range") == "global" else None)
            if acts[last] is not None:
                measures = layer_measures([a[group.seeds] for a in acts[last]], partition, p_x,
                                          p_y_given_x, span)
        bound_gap = _bound_gap(cell, group, groups)
        claims = _group_claims(cell, group, rules, drift, why_no_drift, measures, bound_gap, depth_sweep,
                               deterministic)
        if fit:
            claims = {c: {**v, "verdict": NOT_APPLICABLE, "reason": fit} for c, v in claims.items()}
        out_groups[group.name] = {
            "estimator": group.estimator, "params": group.params, "labels": group.labels,
            "seeds": group.seeds, "partition": partition.description,
            "coverage": cell.coverage(group.epochs) or "complete",
            "last_epoch": int(group.epochs[-1]),
            "claims": claims,
            "layers": _layer_table(group, n_hidden, drift, measures, bound_gap[0], cell, rules),
        }
    return {
        "schema": claimsfile.SCHEMA, "run": cell.path.name, "run_id": cell.run.run_id or None,
        "cell": cell.name, "status": cell.status, "ibrepro_version": ibrepro.__version__,
        "config": config, "rules": rules.as_dict(), "n_seeds": _n_seeds(cell),
        "logged_epochs": [int(cell.epochs[0]), int(cell.epochs[-1]), int(cell.epochs.size)],
        "coverage": cell.coverage() or "complete", "final_epoch": cell.final_epoch,
        "fit": fit, "gradients": why_no_drift or "ok", "groups": out_groups,
        "notes": ([f"no estimates: run `ibrepro analyze {cell.path}`"] if not groups else [])
        + list(cell.notes),
    }


def _group_claims(cell, group: Group, rules: Rules, drift, why_no_drift, measures,
                  bound_gap: tuple[np.ndarray | None, str], depth_sweep: bool, deterministic: bool) -> dict:
    n_hidden = len(cell.config["model"]["hidden"])
    ixt_hidden = group.ixt[:, :, :n_hidden]
    drift_g = None if drift is None else drift[group.seeds][:, :n_hidden]
    gap, why_gap = bound_gap
    excess = None if measures is None else measures.excess(rules.sc_room)
    deep = phases.deep_layers(n_hidden)
    claims = {
        "i": claim_rules.compression(group.epochs, ixt_hidden, np.log2(cell.n_inputs), rules),
        "ii": claim_rules.coincidence(group.epochs, ixt_hidden, drift_g, why_no_drift, rules),
        "iii": claim_rules.bound(gap, why_gap, excess, group.labels, deterministic, rules),
        "iv": claim_rules.depth({}, marks.DEPTH_LAYERS, rules),
        "v": claim_rules.small_data(group.epochs, group.ity[:, :, deep] if deep else None,
                                    cell.config["train"]["train_fraction"], rules),
    }
    out = {name: claim.to_json() for name, claim in claims.items()}
    if depth_sweep:
        out["iv"]["reason"] = "judged across the cells of the depth sweep: see claims.json"
    return out


def _bound_gap(cell: CellResults, group: Group, groups: list[Group]) -> tuple[np.ndarray | None, str]:
    """IB bound at the final I(X;T) minus the final I(T;Y) (S, L), soft labels; or why not.

    With noisy labels only soft-label groups (`analyze --set labels=soft`) are compared with
    the bound, which is computed from p(y|x): one draw of labels carries more information."""
    if cell.ib_bound is None:
        return None, f"no IB bound: run `ibrepro bound {cell.path}`"
    if not caveats.on_bit_scale(group.estimator):
        return None, (f"{group.estimator}'s I(X;T) is not in bits of the discrete inputs (a differential or "
                      "kernel scale), so it cannot be placed against the IB curve")
    gamma = cell.config.get("data", {}).get("gamma", 0) if cell.config["dataset"] == "tishby12" else 0
    if group.labels != "soft" and gamma != 0:
        twin = next((g.name for g in groups if g.labels == "soft" and g.estimator == group.estimator
                     and {**g.params, "labels": "drawn"} == {**group.params, "labels": "drawn"}), None)
        where = (f"see its soft-label group {twin}" if twin else
                 f"run `ibrepro analyze {cell.path} --estimator {group.estimator} --set labels=soft`")
        return None, (f"noisy labels (gamma = {gamma:g}): the IB bound is compared with soft-label "
                      f"I(T;Y) (from p(y|x)), and this group holds drawn-label estimates; {where}")
    ixt, ity = group.ixt[:, -1], group.ity[:, -1]
    return np.interp(ixt, cell.ib_bound.ixt, cell.ib_bound.ity) - ity, ""


def _layer_table(group: Group, n_hidden: int, drift, measures, gap: np.ndarray | None,
                 cell: CellResults, rules: Rules) -> list[dict]:
    """Per layer: the numbers behind the claims (`marks.layer_numbers`, which the figures
    mark too), each [value, lo, hi] over seeds; `final_*` are at the group's last epoch."""
    n_layers = group.ixt.shape[2]
    ceiling = phases.at_ceiling(group.ixt, np.log2(cell.n_inputs), rules.ceiling_bits)
    deep = phases.deep_layers(n_hidden)
    seed_mean_drift = None if drift is None else marks.seed_mean_transition(cell.epochs, cell.gradients)
    breaks = caveats.estimate_caveats(group.estimator, group.epochs, group.ixt, group.ity, cell.label_entropy)
    rows = []
    for k, numbers in enumerate(marks.layer_numbers(group.epochs, group.ixt, group.ity, rules)):
        row = {"layer": "output" if k == n_layers - 1 else f"layer {k + 1}", "deep": k in deep,
               "at_ceiling": bool(ceiling[k]),
               "final_ixt": interval(group.ixt[:, -1, k]), "final_ity": interval(group.ity[:, -1, k]),
               **numbers, "caveats": [{"quantity": c.quantity, "kind": c.kind, "text": c.text}
                                        for c in breaks if c.layer == k]}
        if drift is not None:
            row["drift_epoch"] = marks.epoch_interval(drift[group.seeds, k])
            row["drift_epoch_seed_mean"] = _finite_or_none(seed_mean_drift[k])
        if gap is not None:
            row["gap_to_bound"] = interval(gap[:, k])
        if measures is not None:
            row["sc_share"] = interval(measures.share[:, k])
            row["sc_excess"] = interval(measures.excess(rules.sc_room)[:, k])
        rows.append(row)
    return rows


def judge_depth(cells: list[tuple[CellResults, list[Group]]], rules: Rules) -> dict:
    """The experiment's claims document: claim iv per estimate group, for every family of
    cells whose configs differ only in `model.hidden`."""
    families: dict[str, list[tuple[CellResults, list[Group]]]] = {}
    for cell, groups in cells:
        families.setdefault(_without_depth(cell.config), []).append((cell, groups))
    out = {}
    for members in families.values():
        if len({len(c.config["model"]["hidden"]) for c, _ in members}) < 2:
            continue
        label = _family_label(members, [c for c, _ in cells])
        for name in sorted({g.name for _, groups in members for g in groups}):
            per_depth, used = {}, []
            for cell, groups in members:
                group = next((g for g in groups if g.name == name), None)
                if group is None:
                    continue
                n_hidden = len(cell.config["model"]["hidden"])
                per_depth[n_hidden] = marks.depth_epochs(group.epochs, group.ixt, n_hidden, rules)
                used.append(cell.name)
                sample = group
            key = name if len(families) == 1 else f"{name} ({label})"
            out[key] = {"group": name, "estimator": sample.estimator, "params": sample.params,
                        "labels": sample.labels, "cells": used, "family": label,
                        "claims": {"iv": claim_rules.depth(per_depth, marks.DEPTH_LAYERS, rules).to_json()}}
    return {"schema": claimsfile.SCHEMA, "run": None, "run_id": None,
            "ibrepro_version": ibrepro.__version__, "rules": rules.as_dict(), "groups": out}


def sources(run_path: Path) -> list[Path]:
    """The files a cell's claims are computed from (for staleness)."""
    return [Path(run_path), estimates_path(Path(run_path))]


def _drift(cell: CellResults) -> tuple[np.ndarray | None, str]:
    if cell.gradients is None:
        return None, f"no gradient statistics ({cell.missing.get('gradients', 'none recorded')})"
    if not phases.snr_defined(cell.gradients["std_norm"][:, 1:]):
        return None, ("gradient SNR undefined: one minibatch per epoch (full-batch gradient "
                      "descent), so the gradient std is 0")
    return marks.seed_transitions(cell.epochs, cell.gradients), ""


def _has_depth_sweep(cells: list[CellResults]) -> bool:
    families: dict[str, set[int]] = {}
    for cell in cells:
        families.setdefault(_without_depth(cell.config), set()).add(len(cell.config["model"]["hidden"]))
    return any(len(depths) > 1 for depths in families.values())


def _without_depth(config: dict) -> str:
    rest = json.loads(json.dumps(config))
    rest.pop("sweep", None)
    rest.get("model", {}).pop("hidden", None)
    return json.dumps(rest, sort_keys=True)


def _family_label(members, all_cells) -> str:
    differing = set(cfg.differing_keys(*(c.config for c in all_cells))) - {"model.hidden"}
    flat = cfg.flatten(members[0][0].config)
    return ", ".join(f"{k} = {flat.get(k)}" for k in sorted(differing)) or "all cells"


def _geo(log_values: np.ndarray) -> np.ndarray:
    return 10.0 ** np.mean(log_values, axis=-1)


def _finite_or_none(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def _n_seeds(cell: CellResults) -> int:
    return int(cell.config["train"]["seeds"])
