"""Stage: a model card per registered version, as Markdown and self-contained HTML."""

from __future__ import annotations

import base64
import html
import json
from importlib.metadata import version as installed_version
from pathlib import Path
from typing import Any

from prefect import task

from tasks.clean import CleanedData
from tasks.core import tracking
from tasks.core.config import Config
from tasks.core.inference import Predictor
from tasks.core.promotion import (
    LOWER_IS_BETTER,
    PromotionDecision,
    bootstrap_ci,
    metric_fn,
    slice_masks,
    slice_metric,
)
from tasks.core.report import CSS
from tasks.core.run import RunContext, read_parquet
from tasks.evaluate import Evaluation
from tasks.load import LoadedData
from tasks.register import Registration
from tasks.split import Splits
from tasks.train import TrainedNetwork, encode_target

PACKAGES = ("torch", "scikit-learn", "pandas", "numpy", "mlflow", "prefect", "great-expectations")


def test_evidence(
    network: TrainedNetwork, splits: Splits, evaluation: Evaluation, slices: list[str], seed: int
) -> tuple[dict[str, tuple[float, float] | None], list[tuple[str, int, float]]]:
    """95% bootstrap intervals of the network's test metrics, and its primary metric per slice."""
    test = read_parquet(splits.test)
    predictor = Predictor.load(network.path)
    outputs = predictor.raw_outputs(predictor.features(test))
    y = encode_target(test[splits.dataset.target], splits.classes)
    n = len(splits.classes) if splits.classes else None
    intervals: dict[str, tuple[float, float] | None] = {}
    for key in evaluation.metrics:
        if key.startswith("test_"):
            fn = metric_fn(key.removeprefix("test_"), n)
            intervals[key] = bootstrap_ci(y, outputs, fn, seed=seed)
    fn = metric_fn(evaluation.primary_metric.removeprefix("test_"), n)
    columns = [s for s in slices if s != "class"]
    masks = slice_masks(test, y, splits.classes if "class" in slices else None, columns)
    per_slice = []
    for name, mask in masks.items():
        value = slice_metric(fn, y[mask], outputs[mask])
        if value is not None:  # undefined on some slices, e.g. ROC AUC within one class
            per_slice.append((name, int(mask.sum()), value))
    return intervals, per_slice


def card_sections(
    registration: Registration, decision: PromotionDecision, evaluation: Evaluation,
    data: LoadedData, cleaned: CleanedData, intervals: dict[str, Any],
    per_slice: list[tuple[str, int, float]], config: Config, lineage: dict[str, str],
) -> list[tuple[str, str]]:  # fmt: skip
    """The card as (title, Markdown body) sections; rendered to Markdown and HTML."""
    schema = cleaned.dataset
    stats = cleaned.stats
    rows = [
        ("Model", f"`{registration.model_name}` version **{registration.version}** "
                  f"({registration.model_uri}); {schema.task}, target `{schema.target}`; "
                  f"decision: **{'promoted' if decision.promote else 'not promoted'}**"),
        ("Data", f"- source: `{data.source}`\n- full-content SHA-256: `{data.digest}`\n"
                 f"- rows: {data.rows}\n- numeric features: {', '.join(schema.numeric[:30])}"
                 f"{' ...' if len(schema.numeric) > 30 else ''}\n"
                 f"- categorical features: {', '.join(schema.categorical) or '-'}\n"
                 f"- ignored: {', '.join(schema.ignore) or '-'}; leakage flagged: "
                 f"{', '.join(schema.leakage) or 'none'}"),
    ]  # fmt: skip
    quarantined = data.rows - stats.rows_in
    dropped = "".join(f"\n  - {k}: {v}" for k, v in stats.dropped.items()) or " none"
    rows.append(("Cleaning and quarantine",
                 f"- rows in: {data.rows}\n- quarantined by the suite: {quarantined}\n"
                 f"- dropped by cleaning:{dropped}\n- kept: {stats.rows_kept}\n"
                 f"- values made missing by type coercion: "
                 f"{stats.coerced_to_missing or 'none'}"))  # fmt: skip
    lines = ["| metric | value | 95% CI (bootstrap) |", "|---|---|---|"]
    for key, value in sorted(evaluation.metrics.items()):
        ci = intervals.get(key)
        shown = f"[{ci[0]:.4f}, {ci[1]:.4f}]" if ci else "-"
        direction = " (lower is better)" if key.split("test_")[-1] in LOWER_IS_BETTER else ""
        lines.append(f"| {key}{direction} | {value:.4f} | {shown} |")
    rows.append(("Metrics (test split)", "\n".join(lines)))
    if per_slice:
        champion = {s.slice: s.champion for s in decision.slices}
        slice_lines = ["| slice | rows | this version | champion |", "|---|---|---|---|"]
        for name, n, value in per_slice:
            old = f"{champion[name]:.4f}" if name in champion else "-"
            slice_lines.append(f"| {name} | {n} | {value:.4f} | {old} |")
        rows.append((f"Slices ({decision.metric}, test split)", "\n".join(slice_lines)))
    rows.append(("Promotion gate", decision.markdown().split("\n", 2)[-1]))
    lineage_lines = [f"- {k}: `{v}`" for k, v in lineage.items()]
    lineage_lines.append(f"- seed: `{config.seed}`")
    resolved = json.dumps(config.model_dump(mode="json"), indent=2)
    lineage_lines.append(f"- resolved config:\n\n```json\n{resolved}\n```")
    rows.append(("Lineage", "\n".join(lineage_lines)))
    return rows


def to_markdown(title: str, sections: list[tuple[str, str]], plots: list[str]) -> str:
    """The card as Markdown; plots are referenced by their artifact path."""
    parts = [f"# {title}", ""]
    for heading, body in sections:
        parts += [f"## {heading}", "", body, ""]
    if plots:
        parts += ["## Plots", ""] + [f"- `{p}`" for p in plots] + [""]
    return "\n".join(parts)


def to_html(title: str, sections: list[tuple[str, str]], plots: dict[str, bytes]) -> str:
    """The card as one self-contained HTML page (inline CSS, plots as data URIs)."""
    e = html.escape
    body = [f"<h1>{e(title)}</h1>"]
    for heading, text in sections:
        body.append(f"<h2>{e(heading)}</h2>{_markdown_block(text)}")
    if plots:
        body.append("<h2>Plots</h2>")
        for name, png in plots.items():
            data = base64.b64encode(png).decode()
            body.append(f'<figure><img alt="{e(name)}" style="max-width:100%" '
                        f'src="data:image/png;base64,{data}"><figcaption>{e(name)}'
                        "</figcaption></figure>")  # fmt: skip
    head = f'<head><meta charset="utf-8"><title>{e(title)}</title><style>{CSS}</style></head>'
    return f'<!DOCTYPE html><html lang="en">{head}<body>{"".join(body)}</body></html>\n'


def _markdown_block(text: str) -> str:
    """Tiny Markdown subset (tables, bullets, code fences, paragraphs) to HTML, escaped."""
    e = html.escape
    out, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("```"):
            j = i + 1
            while j < len(lines) and not lines[j].startswith("```"):
                j += 1
            out.append(f"<pre><code>{e(chr(10).join(lines[i + 1 : j]))}</code></pre>")
            i = j + 1
        elif line.startswith("|"):
            rows = []
            while i < len(lines) and lines[i].startswith("|"):
                if not set(lines[i].replace("|", "").strip()) <= {"-", " "}:
                    rows.append([c.strip() for c in lines[i].strip("|").split("|")])
                i += 1
            head, *rest = rows
            table = "<tr>" + "".join(f"<th>{e(c)}</th>" for c in head) + "</tr>"
            table += "".join(
                "<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>" for r in rest
            )
            out.append(f"<table>{table}</table>")
        elif line.startswith("- "):
            items = []
            while i < len(lines) and (lines[i].startswith("- ") or lines[i].startswith("  ")):
                items.append(f"<li>{e(lines[i].strip().removeprefix('- '))}</li>")
                i += 1
            out.append(f"<ul>{''.join(items)}</ul>")
        else:
            if line.strip():
                out.append(f"<p>{e(line)}</p>")
            i += 1
    return "".join(out)


@task(name="model-card")
def write_model_card(
    registration: Registration, decision: PromotionDecision, evaluation: Evaluation,
    data: LoadedData, cleaned: CleanedData, splits: Splits, network: TrainedNetwork,
    config: Config, run: RunContext,
) -> str:  # fmt: skip
    """Build the card, log ``model_card/model_card.{md,html}``, point the version at it."""
    run_tags = tracking.run_tags(run.run_id)
    lineage = {
        "git commit": run_tags.get("mlpipe.git.commit", "unknown"),
        "git tree dirty": run_tags.get("mlpipe.git.dirty", "unknown"),
        "MLflow run": run.run_id,
        **{p: installed_version(p).split("+")[0] for p in PACKAGES},
    }
    intervals, per_slice = test_evidence(
        network, splits, evaluation, config.promotion.slices, config.seed
    )
    sections = card_sections(registration, decision, evaluation, data, cleaned, intervals,
                             per_slice, config, lineage)  # fmt: skip
    plot_dir = Path(run.run_dir) / "plots"
    plots = {p.name: p.read_bytes() for p in sorted(plot_dir.glob("*.png"))}
    title = f"Model card: {registration.model_name} v{registration.version}"
    tracking.log_text(run.run_id, to_markdown(title, sections, [f"plots/{p}" for p in plots]),
                      "model_card/model_card.md")  # fmt: skip
    tracking.log_text(run.run_id, to_html(title, sections, plots), "model_card/model_card.html")
    where = f"runs:/{run.run_id}/model_card/model_card.html"
    tracking.set_version_tags(registration.model_name, registration.version,
                              {"mlpipe.model_card": where})  # fmt: skip
    return where
