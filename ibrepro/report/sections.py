"""The report's sections, built from claims documents (`ibrepro.claims.claimsfile`) only:
the verdict matrix (cells × estimate groups × claims), per cell the claims of each estimate
group with numbers, rules and reasons and a per-layer table, claim iv across depths, settings."""

from __future__ import annotations

import json

from ibrepro import config as cfg
from ibrepro.claims.claimsfile import number
from ibrepro.claims.verdicts import NOT_APPLICABLE, interval_text
from ibrepro.report.document import Heading, Image, Para, Table
from ibrepro.report.plots.style import safe_name

CLAIMS = {
    "i": "Most epochs are spent compressing the representation (I(X;T) falls).",
    "ii": "Compression starts at the drift → diffusion transition of SGD.",
    "iii": "Converged layers lie near the IB bound and satisfy the IB self-consistent equations.",
    "iv": "More hidden layers reach the compressed state in fewer epochs.",
    "v": "With too little data, I(T;Y) of the deep layers falls late in training (overfitting).",
}
MEASURED = {  # claims-file key -> words (epochs are geometric means over seeds)
    "compression_share": "share of training after the I(X;T) peak",
    "compressing_seed_layers": "seed-layers compressing",
    "layers_at_ceiling": "layers at the ceiling (not measurable)",
    "drift_epoch": "drift→diffusion epoch (per seed, hidden layers)", "onset_epoch": "compression onset epoch",
    "coincide_share": "share of layers where they coincide",
    "abs_gap_bits": "median |gap to IB bound| (bits)", "signed_gap_bits": "median signed gap (bits)",
    "sc_excess": "median excess share of inputs in their KL-closest cluster over random partitions "
                 "(0 chance, 1 all)",
    "median_epochs": "median epochs to the compressed state, by depth",
    "spearman": "Spearman(depth, epochs)", "speedup": "shallowest / deepest",
    "late_fall_share": "share of seeds with a late I(T;Y) fall",
    "late_fall_bits": "largest late I(T;Y) fall (bits)",
}
LAYER_COLUMNS = (("final_ixt", "final I(X;T)"), ("final_ity", "final I(T;Y)"),
                 ("ixt_fall", "I(X;T) fall"), ("onset_epoch", "compression onset"),
                 ("compression_share", "share after peak"), ("drift_epoch", "drift→diffusion per seed"),
                 ("gap_to_bound", "gap to IB bound"), ("sc_share", "in KL-closest cluster"),
                 ("sc_excess", "SC excess over random"), ("ity_late_fall", "late I(T;Y) fall"))


def verdict_text(claim: dict) -> str:
    """'supported' or 'not applicable: why' (the reason after a colon when there is one)."""
    return claim["verdict"] + (f": {claim['reason']}" if claim.get("reason") else "")


def depth_verdicts(experiment: dict | None) -> dict[tuple[str, str], dict]:
    """(cell name, group name) -> claim iv of the experiment document."""
    out = {}
    for group in (experiment or {}).get("groups", {}).values():
        for cell in group["cells"]:
            out[(cell, group["group"])] = group["claims"]["iv"]
    return out


def verdict_matrix(documents: list[dict], experiment: dict | None) -> list:
    """The first table: one row per cell and estimate group, one column per claim."""
    depth = depth_verdicts(experiment)
    rows = []
    for doc in documents:
        if not doc["groups"]:
            rows.append((_cell_link(doc), "none", *[NOT_APPLICABLE] * len(CLAIMS)))
        for name, group in doc["groups"].items():
            words = {c: group["claims"][c]["verdict"] for c in CLAIMS}
            if (doc["cell"], name) in depth and not doc["fit"]:
                words["iv"] = depth[(doc["cell"], name)]["verdict"]
            rows.append((_cell_link(doc), f"{name} ({group['labels']} labels{_partial(group, ', ')})",
                         *[words[c] for c in CLAIMS]))
    return [Heading(2, "Verdicts"),
            Para("Each claim judged on each estimate group (the critics' point: the answer can "
                 "depend on the estimator). Reasons, numbers with 95 % bootstrap intervals over "
                 "seeds, and rules are in the cell sections."),
            Table(("cell", "estimate group", *[f"claim {c}" for c in CLAIMS]), rows)]


def cell_section(doc: dict, figures: list[tuple[str, str]], figures_rel: str) -> list:
    """A cell: its run, then per estimate group the claims and the per-layer numbers."""
    status = "" if doc["status"] == "complete" else f" (run status {doc['status']!r}: still training)"
    first, last, count = doc["logged_epochs"]
    experiment = doc["config"].get("name") or "cell"
    out: list = [Heading(2, f"{experiment} · `{doc['run']}`{status}", cell_anchor(doc["cell"]))]
    lines = [f"Run file `{doc['run']}` (cell `{doc['cell']}`): {doc['n_seeds']} seed(s), {count} logged "
             f"epochs up to epoch {last}{_partial(doc, ' — ')}. Gradient statistics: {doc['gradients']}."]
    if doc["fit"]:
        lines.append(f"Every claim is not applicable: {doc['fit']}.")
    lines += doc.get("notes", [])
    out.append(Para(" ".join(lines)))
    for name, group in doc["groups"].items():
        out.append(Heading(3, f"Estimates `{name}`: {_title(group)}{_partial(group, ' — ')}"))
        out.append(Table(("claim", "measured", "rule", "verdict"),
                         [(f"{c}. {CLAIMS[c]}", measured_text(group["claims"][c]["measured"]),
                           group["claims"][c]["rule"]["text"], verdict_text(group["claims"][c]))
                          for c in CLAIMS]))
        out.append(Table(("layer", *_layer_titles(group)), [_layer_row(row) for row in group["layers"]]))
        out += _caveats(group["layers"])
        measured_sc = any("sc_share" in row for row in group["layers"])
        out.append(Para((f"Self-consistency (SC) on {group['partition']}, at the last logged epoch. "
                         if measured_sc else "") + "Intervals: 95 % bootstrap over seeds; epochs as "
                        "geometric means." + _labels_note(doc["config"])))
    if figures:
        out.append(Heading(3, "Figures"))
        out += [Image(f"{figures_rel}/{png}", caption) for png, caption in figures]
    return out


def depth_section(experiment: dict | None) -> list:
    """Claim iv per estimate group of a depth sweep."""
    groups = (experiment or {}).get("groups", {})
    if not groups:
        return []
    out: list = [Heading(2, "Claim iv: depth"), Para(CLAIMS["iv"])]
    rows = []
    for name, group in groups.items():
        claim = group["claims"]["iv"]
        medians = claim["measured"].get("median_epochs", {})
        by_depth = ", ".join(f"{d} hidden: {interval_text(_numbers(v))}" for d, v in medians.items())
        rows.append((name, by_depth or "–",
                     interval_text(_numbers(claim["measured"].get("speedup", [None] * 3))),
                     f"{number(claim['measured'].get('spearman')):.2f}", verdict_text(claim)))
    out.append(Table(("estimate group", "median epochs to compressed state", "shallowest / deepest",
                      "Spearman", "verdict"), rows))
    rule = next(iter(groups.values()))["claims"]["iv"]["rule"]["text"]
    out.append(Para(f"Rule: {rule}."))
    return out


def settings_section(documents: list[dict]) -> list:
    """Shared settings, the keys that differ between cells, and the rules used."""
    configs = [doc["config"] for doc in documents]
    flat = [cfg.flatten(c) for c in configs]
    differing = set(cfg.differing_keys(*configs))
    out: list = [Heading(2, "Settings"),
                 Table(("key", "value"), [(k, _value(v)) for k, v in flat[0].items() if k not in differing])]
    if differing:
        keys = [k for k in flat[0] if k in differing] + sorted(differing - set(flat[0]))
        out.append(Table(("cell", *keys), [(doc["cell"], *[_value(f.get(k, "–")) for k in keys])
                                           for doc, f in zip(documents, flat)]))
    rules = documents[0]["rules"]
    out.append(Para("Rules (change with `--rule name=value` on `ibrepro claims` and `ibrepro "
                    "report`): " + ", ".join(f"{k} = {v:g}" for k, v in rules.items()) + "."))
    return out


def measured_text(measured: dict) -> str:
    parts = []
    for key, value in measured.items():
        label = MEASURED.get(key, key)
        if isinstance(value, dict):
            parts.append(f"{label}: " + ", ".join(f"{k}: {interval_text(_numbers(v))}"
                                                    for k, v in value.items()))
        elif key == "layers_at_ceiling":
            if value:
                parts.append(f"{label}: {', '.join(map(str, value))}")
        elif key == "compressing_seed_layers":
            parts.append(f"{label}: {value[0]}/{value[1]}")
        elif isinstance(value, list):
            parts.append(f"{label}: {interval_text(_numbers(value))}")
        else:
            parts.append(f"{label}: {number(value):.3g}")
    return "; ".join(parts) or "–"


def cell_anchor(cell: str) -> str:
    """The id of a cell's section, linked from the verdict matrix."""
    return f"cell-{safe_name(cell)}"


def _cell_link(doc: dict) -> str:
    return f"[{doc['cell']}](#{cell_anchor(doc['cell'])})"


def _partial(part: dict, joiner: str) -> str:
    """JOINER + "partial: up to epoch N of M" for results that stop before the run's end, else ''."""
    coverage = part.get("coverage", "complete")
    return "" if coverage == "complete" else joiner + coverage


def _layer_titles(group: dict) -> list[str]:
    """Column titles; a partial group's last values are 'at epoch N', never 'final'."""
    if group.get("coverage", "complete") == "complete":
        return [title for _, title in LAYER_COLUMNS]
    at = f" at epoch {group['last_epoch']} (partial)"
    return [title.replace("final ", "") + at if title.startswith("final ") else title for _, title in LAYER_COLUMNS]


def _layer_row(row: dict) -> tuple[str, ...]:
    """A layer's numbers; ⚠ beside a final I(X;T) or I(T;Y) that breaks an inequality (said in
    the last column)."""
    label = row["layer"] + (" (deep)" if row["deep"] else "") + (" (at ceiling)" if row["at_ceiling"] else "")
    flagged = {c["quantity"] for c in row.get("caveats", [])}
    cells = []
    for key, _ in LAYER_COLUMNS:
        text = interval_text(_numbers(row[key])) if key in row else "–"
        if key == "drift_epoch" and row.get("drift_epoch_seed_mean") is not None:
            text += f" (seed-mean SNR: {row['drift_epoch_seed_mean']:.3g})"
        cells.append(text + (" ⚠" if key in ("final_ixt", "final_ity") and key[-3:] in flagged else ""))
    return (label, *cells)


def _caveats(layers: list[dict]) -> list:
    """A paragraph under the layer table on every number it marks ⚠ (none when clean)."""
    said = [f"{row['layer']}: {c['text']}" for row in layers for c in row.get("caveats", [])]
    if not said:
        return []
    return [Para("⚠ Estimator caveats (an estimate that breaks an inequality the true quantity obeys, "
                 "beyond its epoch-to-epoch noise; read these numbers as artefacts of the estimator): "
                 + "; ".join(said) + ".")]


def _labels_note(config: dict) -> str:
    gamma = config.get("data", {}).get("gamma", 0) if config["dataset"] == "tishby12" else 0
    if gamma:
        return (f" Labels are drawn from p(y|x) = σ(γ(f(x) − θ)), γ = {gamma:g}: the gap to the "
                "IB bound is measured on soft-label groups only (I(T;Y) from p(y|x), "
                "`analyze --set labels=soft`), never on the one draw of labels. Self-consistency "
                "(SC): the share of inputs in the cluster whose decoder p(y|t) is KL-closest to their "
                "p(y|x) (the IB equations as β → ∞), and its excess over random partitions of the "
                "same cluster sizes.")
    return (" The labels are deterministic, so the IB bound is min(I(X;T), H(Y)) and "
            "self-consistency is not applicable: every label-pure cluster sits at KL 0 from its "
            "inputs' p(y|x), so it would say no more than the gap.")


def _numbers(values) -> list[float]:
    return [number(v) for v in values]


def _title(group: dict) -> str:
    params = ", ".join(f"{k}={v}" for k, v in group["params"].items() if k != "labels")
    return f"{group['estimator']}" + (f" ({params})" if params else "") + f", {group['labels']} labels"


def _value(value) -> str:
    return value if isinstance(value, str) else json.dumps(value)
