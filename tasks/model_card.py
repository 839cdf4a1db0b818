"""Stage: a model card per registered version, as Markdown and self-contained HTML."""

from __future__ import annotations

from importlib.metadata import version as installed_version
from pathlib import Path

from prefect import task

from mlpipe.config import Config
from mlpipe.handoff import (
    CleanedData,
    Evaluation,
    Evidence,
    LoadedData,
    Registration,
    RunContext,
    Splits,
    ValidatedData,
)
from mlpipe.io import tracking
from mlpipe.learn.metrics import for_task
from mlpipe.learn.promotion import PromotionDecision
from mlpipe.reports import model_card

PACKAGES = ("torch", "scikit-learn", "pandas", "numpy", "mlflow", "prefect", "great-expectations")


@task(name="model-card")
def write_model_card(
    registration: Registration,
    decision: PromotionDecision,
    evaluation: Evaluation,
    data: LoadedData,
    validated: ValidatedData,
    cleaned: CleanedData,
    splits: Splits,
    config: Config,
    run: RunContext,
) -> str:
    """Build the card from the stored evidence, log ``model_card/model_card.{md,html}``."""
    schema = splits.dataset
    evidence = Evidence.load(evaluation.evidence)
    n_classes = len(splits.classes) if splits.classes else None
    network = evidence.outputs["network"]
    intervals = model_card.metric_intervals(
        evidence.y, network, for_task(schema.task), n_classes, config.seed
    )
    per_slice = model_card.slice_values(
        evidence.y, network, evidence.masks, decision.metric, n_classes
    )
    run_tags = tracking.run_tags(run.run_id)
    lineage = {
        "git commit": run_tags.get("mlpipe.git.commit", "unknown"),
        "git tree dirty": run_tags.get("mlpipe.git.dirty", "unknown"),
        "MLflow run": run.run_id,
        "seed": str(config.seed),
        "split": splits.spec.model_dump_json(),
        **{p: installed_version(p).split("+")[0] for p in PACKAGES},
    }
    stats = cleaned.stats
    accounting = {
        "rows_in": data.rows,
        "rows_quarantined": validated.gate.rows_quarantined,
        "dropped": stats.dropped,
        "rows_kept": stats.rows_kept,
        "coerced": stats.coerced_to_missing,
    }
    described = {
        "source": data.source,
        "digest": data.digest,
        "rows": data.rows,
        "task": schema.task,
        "target": schema.target,
        "numeric": schema.numeric,
        "categorical": schema.categorical,
        "ignore": schema.ignore,
        "identifiers": schema.identifiers,
        "leakage": schema.leakage,
    }
    parts = model_card.sections(
        model_name=registration.model_name,
        version=registration.version,
        model_uri=registration.model_uri,
        decision=decision,
        metrics=evaluation.metrics,
        intervals=intervals,
        per_slice=per_slice,
        data=described,
        accounting=accounting,
        lineage=lineage,
        config=config.safe_dump(),
        evidence=(len(evidence.y), evaluation.test_rows),
    )
    plot_dir = Path(run.run_dir) / "plots"
    plots = {p.name: p.read_bytes() for p in sorted(plot_dir.glob("*.png"))}
    title = f"Model card: {registration.model_name} v{registration.version}"
    tracking.log_text(
        run.run_id,
        model_card.to_markdown(title, parts, [f"plots/{p}" for p in plots]),
        "model_card/model_card.md",
    )
    tracking.log_text(
        run.run_id, model_card.to_html(title, parts, plots), "model_card/model_card.html"
    )
    where = f"runs:/{run.run_id}/model_card/model_card.html"
    tracking.set_version_tags(
        registration.model_name, registration.version, {"mlpipe.model_card": where}
    )
    # The version page renders its description: the decision, and links to the rendered card.
    verdict = "promoted to champion" if decision.promote else "not promoted"
    tracking.set_version_description(
        registration.model_name,
        registration.version,
        f"**{verdict}**: {decision.reason}\n\n"
        f"[Model card]({tracking.ui_link(run.run_id, 'model_card/model_card.html')}) · "
        f"[training run]({tracking.ui_link(run.run_id)}) · "
        f"[alias history]({tracking.ui_link(run.run_id, 'registry/alias_history.html')})",
    )
    return where
