"""The model card of a version: Markdown sections, rendered to a self-contained page."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from mlpipe.learn.metrics import METRICS, higher_is_better, score
from mlpipe.learn.promotion import PromotionDecision, bootstrap_ci
from mlpipe.reports.markdown import cell, page

# The card's intervals describe one model (vectorised resampling, at most MAX_RESAMPLE_ROWS rows
# per resample: the cost does not grow with the test set). Promotion uses promotion.resamples.
CI_RESAMPLES = 1000


def metric_intervals(
    y: np.ndarray, outputs: np.ndarray, names: list[str], n_classes: int | None, seed: int
) -> dict[str, tuple[float, float] | None]:
    """95% bootstrap interval of each metric on the test rows."""
    return {
        name: bootstrap_ci(y, outputs, name, n_classes, resamples=CI_RESAMPLES, seed=seed)
        for name in names
    }


def slice_values(
    y: np.ndarray,
    outputs: np.ndarray,
    masks: dict[str, np.ndarray],
    metric: str,
    n_classes: int | None,
) -> list[tuple[str, int, float]]:
    """The primary metric per slice, where it is defined."""
    out = []
    for label, mask in masks.items():
        value = score(metric, y[mask], outputs[mask], n_classes)
        if value is not None:
            out.append((label, int(mask.sum()), value))
    return out


def sections(
    *,
    model_name: str,
    version: str,
    model_uri: str,
    decision: PromotionDecision,
    metrics: dict[str, float],
    intervals: dict[str, tuple[float, float] | None],
    per_slice: list[tuple[str, int, float]],
    data: dict[str, Any],
    accounting: dict[str, Any],
    lineage: dict[str, str],
    config: dict[str, Any],
    evidence: tuple[int, int] | None = None,
) -> list[tuple[str, str]]:
    """The card as (title, Markdown body) sections.

    Args:
        model_name: Registered model name.
        version: Version number.
        model_uri: ``models:/`` URI.
        decision: The promotion decision.
        metrics: Test metrics (``test_*``, ``baseline_test_*``).
        intervals: Bootstrap intervals by metric name (without ``test_``).
        per_slice: ``(slice, rows, value)`` of the primary metric.
        data: ``source``, ``digest``, ``rows``, ``task``, ``target`` and the role lists.
        accounting: Row accounting: quarantined, dropped by reason, kept, coerced.
        lineage: Commit, run id, package versions.
        config: The resolved config (secrets already redacted).
        evidence: ``(evidence rows, test rows)``: the intervals and slices describe a sample
            when the first is smaller.
    """
    verdict = "promoted" if decision.promote else "not promoted"
    rows = [
        (
            "Model",
            f"`{cell(model_name)}` version **{version}** ({cell(model_uri)}); "
            f"{data['task']}, target `{cell(data['target'])}`; decision: **{verdict}**; "
            f"eligible for champion: {'yes' if decision.eligible else 'no'}",
        ),
        (
            "Data",
            f"- source: `{cell(data['source'])}`\n- full-content SHA-256: "
            f"`{data['digest']}`\n- rows: {data['rows']}\n- numeric features: "
            f"{cell(', '.join(data['numeric'][:30]))}"
            f"{' ...' if len(data['numeric']) > 30 else ''}\n"
            f"- categorical features: {cell(', '.join(data['categorical']) or '-')}\n"
            f"- ignored: {cell(', '.join(data['ignore']) or '-')}; identifiers: "
            f"{cell(', '.join(data['identifiers']) or 'none')}; leakage flagged: "
            f"{cell(', '.join(data['leakage']) or 'none')}",
        ),
    ]
    dropped = "".join(f"\n  - {cell(k)}: {v}" for k, v in accounting["dropped"].items()) or " none"
    rows.append(
        (
            "Cleaning and quarantine",
            f"- rows in: {accounting['rows_in']}\n- quarantined by the suite: "
            f"{accounting['rows_quarantined']}\n- dropped by cleaning:{dropped}\n"
            f"- kept: {accounting['rows_kept']}\n- values made missing by type coercion: "
            f"{cell(accounting['coerced'] or 'none')}",
        )
    )
    lines = [f"| metric | value | 95% CI (bootstrap, {CI_RESAMPLES} resamples) |", "|---|---|---|"]
    for key, value in sorted(metrics.items()):
        name = key.split("test_")[-1]
        ci = intervals.get(name) if key.startswith("test_") else None
        shown = f"[{ci[0]:.4f}, {ci[1]:.4f}]" if ci else "-"
        lower = name in METRICS and not higher_is_better(name)
        direction = " (lower is better)" if lower else ""
        lines.append(f"| {key}{direction} | {value:.4f} | {shown} |")
    if evidence is not None and evidence[0] < evidence[1]:
        lines.append(
            f"\nValues count all {evidence[1]} test rows; the intervals, slices and plots use a "
            f"uniform sample of {evidence[0]} of them."
        )
    rows.append(("Metrics (test split)", "\n".join(lines)))
    if per_slice:
        champion = {s.slice: s.champion for s in decision.slices}
        slice_lines = ["| slice | rows | this version | champion |", "|---|---|---|---|"]
        for label, n, value in per_slice:
            old = f"{champion[label]:.4f}" if label in champion else "-"
            slice_lines.append(f"| {cell(label)} | {n} | {value:.4f} | {old} |")
        rows.append((f"Slices ({decision.metric}, test split)", "\n".join(slice_lines)))
    rows.append(("Promotion gate", decision.markdown().split("\n", 2)[-1]))
    lineage_lines = [f"- {cell(k)}: `{cell(v)}`" for k, v in lineage.items()]
    resolved = json.dumps(config, indent=2)
    lineage_lines.append(f"- resolved config:\n\n```json\n{resolved}\n```")
    rows.append(("Lineage", "\n".join(lineage_lines)))
    return rows


def to_markdown(title: str, parts: list[tuple[str, str]], plots: list[str]) -> str:
    """The card as Markdown; plots are referenced by their artifact path."""
    out = [f"# {cell(title)}", ""]
    for heading, body in parts:
        out += [f"## {heading}", "", body, ""]
    if plots:
        out += ["## Plots", ""] + [f"- `{p}`" for p in plots] + [""]
    return "\n".join(out)


def to_html(title: str, parts: list[tuple[str, str]], plots: dict[str, bytes]) -> str:
    """The card as one self-contained HTML page (plots embedded)."""
    body = to_markdown(title, parts, [])
    if plots:
        body += "\n## Plots\n"
    return page(title, body, plots)
