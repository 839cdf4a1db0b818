"""Recovery of versions left mid-gate by a killed process (tracking.fail_pending_versions)."""

from __future__ import annotations

from pathlib import Path

from mlflow import MlflowClient

from mlpipe.io import tracking


def _version(client: MlflowClient, run_id: str, decision: str, eligible: str) -> str:
    tags = {tracking.DECISION_TAG: decision, tracking.ELIGIBLE_TAG: eligible}
    mv = client.create_model_version("m", "file:///nowhere", run_id=run_id, tags=tags)
    return str(mv.version)


def test_recovery_fails_pending_versions_and_settles_interrupted_promotions(
    isolated_workdir: Path,
):
    tracking.configure()
    client = MlflowClient()
    client.create_registered_model("m")
    run_id = client.create_run(client.create_experiment("e")).info.run_id
    pending = _version(client, run_id, "pending", "false")
    won = _version(client, run_id, tracking.PROMOTING, "true")  # killed after the alias moved
    lost = _version(client, run_id, tracking.PROMOTING, "true")  # killed before it moved
    judged = _version(client, run_id, "not promoted", "false")
    client.set_registered_model_alias("m", "champion", won)

    failed = tracking.fail_pending_versions(run_id, "run killed")

    assert failed == [f"m v{pending}"]
    state = {v: client.get_model_version("m", v).tags for v in (pending, won, lost, judged)}
    assert state[pending][tracking.DECISION_TAG] == "failed"
    assert state[pending][tracking.ELIGIBLE_TAG] == "false"
    # The champion stays on a version that is recorded as promoted and still eligible.
    assert state[won][tracking.DECISION_TAG] == "promoted"
    assert state[won][tracking.ELIGIBLE_TAG] == "true"
    assert state[lost][tracking.DECISION_TAG] == "not promoted"
    assert state[judged][tracking.DECISION_TAG] == "not promoted"
    assert tracking.champion("m").version == won
