"""Stage: smoke-test the new version in a fresh process, then decide `champion` on evidence."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from prefect import task

from mlpipe.config import PromotionConfig
from mlpipe.data.split import held_out
from mlpipe.errors import RegistryError, SmokeTestError, TrackingError
from mlpipe.handoff import Evaluation, Evidence, Registration, RunContext, Splits
from mlpipe.io import tracking
from mlpipe.io.tables import iter_partitions, read_parquet, write_parquet
from mlpipe.learn.promotion import ChampionEvidence, PromotionDecision, decide
from mlpipe.orchestration import publish_markdown
from mlpipe.registry import champion_outputs, incompatibility, resolve, split_spec
from mlpipe.reports import markdown
from mlpipe.secrets import redact
from mlpipe.serving.schema import Schema
from mlpipe.smoke import run_in_fresh_process

log = logging.getLogger("mlpipe.promote")
SMOKE_ROWS = 50
# Re-judge at most this often when other runs keep moving the alias meanwhile.
MAX_ATTEMPTS = 3
DECISION, PROMOTING = tracking.DECISION_TAG, tracking.PROMOTING


@task(name="smoke-test")
def smoke_test(registration: Registration, splits: Splits, run: RunContext) -> str:
    """Load the version by its ``models:/`` URI in a fresh process and score sample rows."""
    first = next(iter_partitions(splits.test))
    rows = pd.concat(
        [read_parquet(registration.input_example), first[splits.dataset.features].head(SMOKE_ROWS)],
        ignore_index=True,
    )
    path = write_parquet(rows, run.path("smoke_rows.parquet"))
    ok, detail = run_in_fresh_process(registration.model_uri, path, tracking.current_uri())
    name, version = registration.model_name, registration.version
    if not ok:
        reason = f"smoke test failed: {detail.splitlines()[-1][:300] if detail else 'no output'}"
        tracking.set_version_tags(
            name,
            version,
            {
                "mlpipe.decision": "failed",
                "mlpipe.decision.reason": reason,
                tracking.ELIGIBLE_TAG: "false",
                tracking.ELIGIBLE_REASON_TAG: reason[:500],
            },
        )
        raise SmokeTestError(
            f"{registration.model_uri} failed to load and predict in a fresh "
            f"process: {reason.removeprefix('smoke test failed: ')}"
        )
    tracking.set_version_tags(name, version, {"mlpipe.smoke": "passed"})
    log.info("smoke test passed in a fresh process: %s", detail)
    return detail


def _champion_evidence(
    registration: Registration,
    current: tracking.Champion,
    test: pd.DataFrame,
    schema: Schema,
    classes: list | None,
) -> ChampionEvidence:
    """The champion's outputs on the challenger's evidence rows that it held out too."""
    shared = np.zeros(len(test), dtype=bool)
    name = registration.model_name
    hint = (
        f" (to replace it deliberately: mlpipe rollback --model {name} --to {registration.version})"
    )
    try:
        theirs = resolve(name, current.version).dataset
    except RegistryError as err:  # a champion registered by hand, without mlpipe's schema
        return ChampionEvidence(current.version, shared, None, str(err) + hint)
    problem = incompatibility(theirs, schema, list(test.columns))
    if problem is not None:
        return ChampionEvidence(current.version, shared, None, problem + hint)
    spec = split_spec(current.tags)
    if spec is not None and all(c in test.columns for c in spec.columns):
        shared = held_out(test, spec)
    outputs = None
    if shared.any():
        rows = test.loc[shared, theirs.features]
        try:
            outputs = champion_outputs(f"models:/{name}/{current.version}", rows, classes)
        except TrackingError:
            raise
        except Exception as err:  # any failure to score means "not comparable"
            why = str(err) if isinstance(err, RegistryError) else _scoring_failure(err)
            return ChampionEvidence(
                current.version, shared, None, redact(" ".join(why.split()))[:300] + hint
            )
    return ChampionEvidence(version=current.version, shared=shared, outputs=outputs)


def _scoring_failure(err: Exception) -> str:
    """The cause of a champion's failure to score, without the rows MLflow quotes with it."""
    text = str(err)
    # MLflow: "Failed to enforce schema of data '<the whole frame>' with schema '...'. Error: X"
    cause = text.rsplit("Error: ", 1)[-1] if "Failed to enforce schema" in text else text
    first = cause.strip().splitlines()[0] if cause.strip() else type(err).__name__
    return f"it cannot score this version's rows: {first}"


@task(name="promote")
def promote_model(
    registration: Registration,
    evaluation: Evaluation,
    splits: Splits,
    cfg: PromotionConfig,
    seed: int,
    run: RunContext,
) -> PromotionDecision:
    """Judge the version; move `champion` by compare-and-set, re-judging if it moved meanwhile."""
    name, version = registration.model_name, registration.version
    evidence = Evidence.load(evaluation.evidence)
    test = read_parquet(evaluation.evidence_rows)  # the test rows the evidence holds
    n_classes = len(splits.classes) if splits.classes else None
    metric = evaluation.primary_metric.removeprefix("test_")
    decision: PromotionDecision | None = None
    for _ in range(MAX_ATTEMPTS):
        current = tracking.champion(name)
        if current is not None and current.version == version:
            current = None
        champion = None
        if current is not None:
            champion = _champion_evidence(
                registration, current, test, splits.dataset, splits.classes
            )
        decision = decide(
            evidence.y,
            evidence.outputs["network"],
            trivial=evidence.outputs["trivial"],
            baseline=evidence.outputs.get("baseline"),
            baseline_kind=evaluation.baseline_kind,
            champion=champion,
            masks=evidence.masks,
            metrics=evaluation.metrics,
            metric=metric,
            n_classes=n_classes,
            cfg=cfg,
            seed=seed,
        )
        if not decision.promote:
            break
        # Eligibility first: a kill between these tags and the alias move must never leave
        # `champion` on a version recovery would then mark failed.
        tracking.set_version_tags(name, version, {**_eligibility(decision), DECISION: PROMOTING})
        expected = current.version if current is not None else None
        moved = tracking.move_alias(
            name,
            version,
            decision.reason,
            run_id=run.run_id,
            expected=expected,
            compared_with=expected,
        )
        if moved is not None:
            break
        log.info("champion of %s changed while v%s was judged: judging again", name, version)
    else:
        assert decision is not None
        decision = decision.model_copy(
            update={
                "promote": False,
                "reason": f"not promoted: the champion changed {MAX_ATTEMPTS} times while this "
                "version was judged",
            }
        )
    assert decision is not None
    _record(decision, registration, run)
    return decision


def _eligibility(decision: PromotionDecision) -> dict[str, str]:
    return {
        tracking.ELIGIBLE_TAG: "true" if decision.eligible else "false",
        tracking.ELIGIBLE_REASON_TAG: (
            "smoke test and gate passed" if decision.eligible else decision.reason[:500]
        ),
    }


def _record(decision: PromotionDecision, registration: Registration, run: RunContext) -> None:
    """Decision and eligibility as version tags, run tags, an artifact and a Prefect artifact."""
    name, version = registration.model_name, registration.version
    tags = {
        DECISION: "promoted" if decision.promote else "not promoted",
        "mlpipe.decision.reason": decision.reason[:5000],
        "mlpipe.decision.compared_with": decision.champion_version or "none",
        **_eligibility(decision),
    }
    if decision.test is not None:
        tags["mlpipe.decision.test"] = decision.test.method
        tags["mlpipe.decision.difference"] = f"{decision.test.difference:+.6f}"
        if decision.test.ci_low is not None:
            tags["mlpipe.decision.ci"] = (
                f"[{decision.test.ci_low:+.6f}, {decision.test.ci_high:+.6f}]"
            )
        if decision.test.p_value is not None:
            tags["mlpipe.decision.p_value"] = f"{decision.test.p_value:.6g}"
    tracking.set_version_tags(name, version, tags)
    tracking.set_tags(run.run_id, {k: v for k, v in tags.items() if k != "mlpipe.decision.reason"})
    tracking.log_dict(run.run_id, decision.model_dump(mode="json"), "registry/decision.json")
    history = markdown.alias_history(name, tracking.alias_history(name))
    tracking.log_text(run.run_id, history, "registry/alias_history.md")
    tracking.log_text(
        run.run_id, markdown.page(f"Alias history: {name}", history), "registry/alias_history.html"
    )
    publish_markdown(decision.markdown(), f"promotion-{name}", "mlpipe promotion decision")
    log.info("%s v%s: %s", name, version, decision.reason)
