"""table.md (the layout of the paper's Table 1) and table.csv of a comparison.

table.md: one table per metric and representation, headed with both
(``## DCI (mean representation)``, ``## DCI (sampled representation)``) —
rows are models, columns the dataset's factors, then the metric's named
scores (DCI's completeness and informativeness, say), then the score (the
metric's name in capitals, e.g. RMIG); below a table, when the metric says,
what its score and its factor columns are — and a table of the final
reconstruction loss, KL and β. Factor columns follow the
display order the dataset declares, which the runs record in results.json
under ``dataset.factor_display_order`` (dSprites and dsprites_synth declare
the paper's: pos. x, pos. y, shape, scale, orientation); without one, the
order the metric reports them in (the dataset's factor order). Cells are
"mean ± std" over the complete seeds; "n" counts them, "failed" counts failed
runs (of all requested seeds); runs not averaged are listed with their status
and error below the tables. How the runs were executed (:mod:`disbench.execution`)
is said in the header when every averaged run was executed alike, and in an
"Execution" table otherwise; a row whose own runs were executed differently is
marked † and its runs are named below each table.

table.csv (long format): one row per model × table × column with
``model, metric, representation, column, mean, std, median, q1, q3, n, failed,
seeds`` (median and quartiles over the complete seeds, linearly interpolated; ``seeds``
lists the row's seeds, space-separated):
``metric`` is the metric's name (``dci``, also for ``dci@sampled``) or
``final`` (columns recon, kl, beta; no representation), ``dynamics`` (the
controller and emergence columns, no representation); ``representation``
is ``mean`` or ``sampled``; ``column`` is the factor's name as the dataset
gives it, ``score:NAME`` for a named score, or ``score``; ``std`` is empty with
fewer than two complete seeds, ``mean`` with none. Then one ``exec_SETTING``
column per execution setting (``exec_threads``, ``exec_group_size``, ...): its
value among the row's averaged runs, or their values joined by ``; `` where
they differ.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Sequence

from ..execution import COLUMNS as EXECUTION_COLUMNS
from ..execution import SETTING_TEXT, SETTINGS, describe
from ..io import atomic_write_text
from .aggregate import (FINAL_KEYS, NAMED_SCORE, SCORE, UNRECORDED, Comparison, MetricLabel, ModelSummary, Stat,
                        mixed_text)

TABLE_MD, TABLE_CSV = "table.md", "table.csv"
MIXED_MARK = " †"

FACTOR_HEADERS = {"pos_x": "pos. x", "pos_y": "pos. y"}
FINAL_HEADERS = {"recon": "recon (nats)", "kl": "KL (nats)", "beta": "β"}
DYNAMICS_HEADERS = {"last_phase_error_rms": "RMS |KL − C|, last phase", "fraction_at_beta_min": "at β_min",
                    "beta_crosses_1_at": "β < 1 from step", "overshoot_max": "max overshoot (nats)",
                    "latents_emerged": "latents emerged", "smallest_emergence_gap": "smallest gap (steps)"}
DYNAMICS_FORMATS = {"last_phase_error_rms": ".3f", "fraction_at_beta_min": ".2f", "beta_crosses_1_at": ",.0f",
                    "overshoot_max": ".3f", "latents_emerged": ".1f", "smallest_emergence_gap": ",.0f"}
FINAL_FORMATS = {"recon": ".2f", "kl": ".2f", "beta": ".3g"}
METRIC_FORMAT = ".3f"
DASH = "—"
REPRESENTATION_TEXT = {"mean": "mean representation", "sampled": "sampled representation"}
NAMED_SCORE_HEADERS = {
    "informativeness_train": "informativeness (train)", "informativeness_test": "informativeness (test)",
    "explicitness_train": "explicitness (train)", "explicitness_test": "explicitness (test)",
    "train_accuracy": "train accuracy", "num_active_dims": "active latents",
    "gaussian_wasserstein_correlation": "Wasserstein corr.",
    "gaussian_wasserstein_correlation_norm": "Wasserstein corr. (norm.)",
    "mutual_info_score": "mutual info",
}


def display_order(comparison: Comparison) -> list[str]:
    """The factor display order the runs' dataset declared (empty if none)."""
    return list((comparison.dataset or {}).get("factor_display_order") or [])


def display_columns(columns: list[str], order: Sequence[str] = ()) -> list[str]:
    """Factor columns in ``order`` (factors it does not list follow in their
    given order), or as given without one; then the named scores; score last."""
    named = [c for c in columns if c.startswith(NAMED_SCORE)]
    factors = [c for c in columns if c != SCORE and c not in named]
    factors = [f for f in order if f in factors] + [f for f in factors if f not in order]
    return factors + named + ([SCORE] if SCORE in columns else [])


def label_of(comparison: Comparison, metric: str) -> MetricLabel:
    return comparison.labels.get(metric) or MetricLabel(metric, "mean")


def header(column: str, metric: str) -> str:
    """A column's header: the metric's name in capitals for the score (``dci@sampled``
    -> DCI: the table's heading names the representation), else the factor or score name."""
    if column == SCORE:
        return metric.split("@")[0].upper()
    if column.startswith(NAMED_SCORE):
        name = column[len(NAMED_SCORE):]
        return NAMED_SCORE_HEADERS.get(name, name.replace("_", " "))
    return FACTOR_HEADERS.get(column, column)


def title(label: MetricLabel) -> str:
    """``DCI (mean representation)``."""
    return f"{label.metric.upper()} ({REPRESENTATION_TEXT.get(label.representation, label.representation)})"


def note(label: MetricLabel) -> str | None:
    """The line under a metric's table saying what its score and factor columns are."""
    parts = []
    if label.score_name:
        parts.append(f"{label.metric.upper()}: {label.score_name}.")
    if label.per_factor_name:
        parts.append(f"Factor columns: {label.per_factor_name}.")
    return " ".join(parts) or None


def cell(s: Stat, spec: str) -> str:
    if s.n == 0 or s.mean is None:
        return DASH
    if s.std is None:
        return f"{s.mean:{spec}}"
    return f"{s.mean:{spec}} ± {s.std:{spec}}"


def _row(values) -> str:
    return "| " + " | ".join(str(v).replace("|", "\\|") for v in values) + " |"


def _rule(n: int) -> str:
    return "| :-- | " + " | ".join(["--:"] * (n - 1)) + " |"


def _failed(summary) -> str:
    return f"{len(summary.failed)}/{len(summary.runs)}" if summary.failed else "0"


def execution_values(summary: ModelSummary) -> dict[str, str]:
    """Each setting's value among a row's averaged runs ("1; 2" where they differ; "" with none)."""
    return {name: "; ".join(values) for name, values in summary.execution.items()}


def execution_lines(c: Comparison) -> tuple[list[str], list[str]]:
    """The header's line on how the runs were executed, and the Execution section
    (only when runs were executed differently)."""
    rows = [s for s in c.summaries.values() if s.complete]
    distinct = {tuple(execution_values(s).items()) for s in rows}
    if not rows:
        return [], []
    if len(distinct) == 1:
        values = execution_values(rows[0])
        if set(values.values()) == {UNRECORDED}:
            return ["Execution not recorded (runs trained by an older disbench)."], []
        return [f"Executed alike: {describe(values)}."], []
    section = ["## Execution", "", _row(["model", "n", *(SETTING_TEXT[n] for n in SETTINGS)]),
               _rule(len(SETTINGS) + 2)]
    section += [_row([_label(s), len(s.complete), *execution_values(s).values()]) for s in rows]
    section += ["", "How each row's averaged runs were executed (values joined by ; where they differ).", ""]
    return ["Runs were executed differently: see “Execution” below."], section


def _label(s: ModelSummary) -> str:
    return s.label + (MIXED_MARK if s.mixed_execution else "")


def mixed_note(c: Comparison) -> list[str]:
    """The line under each table naming the runs of † rows."""
    mixed = [mixed_text(s.label, s.mixed_execution) for s in c.summaries.values() if s.mixed_execution]
    return [f"† Executed differently within the row — {' · '.join(mixed)}.", ""] if mixed else []


def markdown(comparison: Comparison, protocol_name: str | None = None) -> str:
    c = comparison
    header_line, execution_section = execution_lines(c)
    below = mixed_note(c)
    protocol = c.protocol or {}
    facts = [f"protocol `{protocol_name}`" if protocol_name else None,
             f"fingerprint `{c.fingerprint}`" if c.fingerprint else None,
             f"dataset `{(c.dataset or {}).get('name')}`" if c.dataset else None,
             f"{protocol['steps']:,} steps" if protocol.get("steps") else None,
             "seeds " + ", ".join(map(str, c.seeds)),
             "grid " + " × ".join(f"`{axis}` ∈ {{{', '.join(map(str, values))}}}" for axis, values in c.grid.items())
             if c.grid else None]
    lines = ["# Comparison", "", " · ".join(f for f in facts if f) + ".",
             "Cells: mean ± sample std (ddof = 1) over the complete runs; n = complete runs; "
             f"{DASH} = no value (a std needs two seeds); failed = failed runs / seeds.", *header_line, ""]
    for metric in c.metric_names:
        cols = display_columns(c.columns[metric], display_order(c))
        label = label_of(c, metric)
        lines += [f"## {title(label)}", "",
                  _row(["model", "n", *(header(col, metric) for col in cols), "failed"]), _rule(len(cols) + 3)]
        for s in c.summaries.values():
            stats = s.metrics.get(metric, {})
            lines.append(_row([_label(s), len(s.complete),
                               *(cell(stats.get(col, Stat(0, None, None)), METRIC_FORMAT) for col in cols),
                               _failed(s)]))
        lines.append("")
        if note(label):
            lines += [note(label), ""]
        lines += below
    lines += ["## Final training values", "",
              _row(["model", "n", *(FINAL_HEADERS[k] for k in FINAL_KEYS), "failed"]), _rule(len(FINAL_KEYS) + 3)]
    for s in c.summaries.values():
        lines.append(_row([_label(s), len(s.complete), *(cell(s.final[k], FINAL_FORMATS[k]) for k in FINAL_KEYS),
                           _failed(s)]))
    lines += [""] + below
    if any(st.n for s in c.summaries.values() for st in s.dynamics.values()):
        lines += ["## Controller and emergence", "",
                  "From each run's log (docs/controllers.md): the set-point tracking of closed-loop β, and "
                  "when latents' KL first exceeded the emergence threshold.", "",
                  _row(["model", "n", *DYNAMICS_HEADERS.values(), "failed"]), _rule(len(DYNAMICS_HEADERS) + 3)]
        for s in c.summaries.values():
            lines.append(_row([_label(s), len(s.complete),
                               *(cell(s.dynamics[k], DYNAMICS_FORMATS[k]) for k in DYNAMICS_HEADERS), _failed(s)]))
        lines += [""] + below
    lines += distribution_section(c)
    lines += execution_section
    left_out = [r for s in c.summaries.values() for r in s.failed + s.unfinished]
    if left_out:
        lines += ["## Runs not averaged", "", _row(["model", "seed", "status", "detail"]), "| :-- | --: | :-- | :-- |"]
        rows = list(c.summaries)
        for r in sorted(left_out, key=lambda r: (rows.index(r.label), r.seed)):
            lines.append(_row([r.label, r.seed, r.status, _detail(r)]))
        lines.append("")
    return "\n".join(lines)


def distribution_section(c: Comparison) -> list[str]:
    """Each metric's score over the seeds as a box plot summarises it: median [Q1, Q3]
    (disentanglement_lib's study shows its scores so)."""
    if not c.metric_names:
        return []
    lines = ["## Scores over seeds: median [Q1, Q3]", "",
             _row(["model", "n", *(title(label_of(c, m)) for m in c.metric_names)]), _rule(len(c.metric_names) + 2)]
    for s in c.summaries.values():
        lines.append(_row([_label(s), len(s.complete),
                           *(quartiles(s.metrics.get(m, {}).get(SCORE, Stat(0, None, None))) for m in c.metric_names)]))
    return lines + ["", "The score column of each table above as box plots summarise it (a study draws them: "
                        "`figures/box_METRIC`); quartiles interpolated linearly.", ""]


def quartiles(s: Stat) -> str:
    if s.n == 0 or s.median is None:
        return DASH
    return f"{s.median:{METRIC_FORMAT}} [{s.q1:{METRIC_FORMAT}}, {s.q3:{METRIC_FORMAT}}]"


def _detail(record) -> str:
    results = record.results or {}
    if record.status == "failed":
        text = " ".join(str(results.get("error") or "no error recorded").split())
        return text if len(text) <= 200 else text[:199] + "…"
    if record.status == "missing":
        return "not started"
    return f"stopped at step {results.get('steps')} of {results.get('steps_planned')}"


def table_cells(comparison: Comparison) -> list[tuple]:
    """Every cell of the tables, long format: (model, metric, representation, column,
    Stat, failed, seeds, bindings, execution) — seeds: the row's requested seeds; representation is None for the final and
    dynamics rows; bindings are the row's grid point in a sweep ({} in a compare);
    execution maps each setting to its value(s) among the row's averaged runs."""
    out = []
    for s in comparison.summaries.values():
        rows = [(label_of(comparison, metric), col, s.metrics[metric][col]) for metric in comparison.metric_names
                for col in display_columns(comparison.columns[metric], display_order(comparison))]
        rows = [(label.metric, label.representation, col, st) for label, col, st in rows]
        rows += [("final", None, k, s.final[k]) for k in FINAL_KEYS]
        rows += [("dynamics", None, k, s.dynamics[k]) for k in DYNAMICS_HEADERS]
        executed = execution_values(s)
        out += [(s.model, metric, representation, col, st, len(s.failed), [r.seed for r in s.runs],
                 dict(s.point.bindings),
                 executed) for metric, representation, col, st in rows]
    return out


def csv_text(comparison: Comparison) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    axes = list(comparison.grid)
    writer.writerow(["model", *axes, "metric", "representation", "column", "mean", "std", "median", "q1", "q3", "n",
                     "failed", "seeds", *EXECUTION_COLUMNS])
    for model, metric, representation, col, st, failed, seeds, bindings, executed in table_cells(comparison):
        writer.writerow([model, *(bindings.get(a, "") for a in axes), metric, representation or "", col,
                         _num(st.mean), _num(st.std), _num(st.median), _num(st.q1), _num(st.q3), st.n, failed,
                         " ".join(map(str, seeds)), *executed.values()])
    return out.getvalue()


def _num(value) -> str:
    return "" if value is None else repr(float(value))


def write_tables(comparison: Comparison, out_dir: Path, protocol_name: str | None = None) -> list[Path]:
    out_dir = Path(out_dir)
    atomic_write_text(out_dir / TABLE_MD, markdown(comparison, protocol_name))
    atomic_write_text(out_dir / TABLE_CSV, csv_text(comparison))
    return [out_dir / TABLE_MD, out_dir / TABLE_CSV]
