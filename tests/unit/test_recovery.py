"""Recovery of versions left mid-gate by a killed process (tracking.fail_pending_versions)."""

from __future__ import annotations

from pathlib import Path

import pytest
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


class _Signal(BaseException):
    """Stands for Prefect's TerminationSignal (a BaseException)."""


def _wrapped_by_cleanup() -> None:
    # What MLflow does when SIGTERM interrupts a SQLite session: closing it fails, and the
    # failure is wrapped in MLflow's own error, with the signal only in the chain.
    try:
        raise _Signal()
    except BaseException:
        try:
            raise RuntimeError("")
        except RuntimeError as closing:
            raise ValueError("wrapped") from closing


def test_a_signal_wrapped_inside_mlflow_comes_out_as_the_signal():
    from mlpipe.errors import interruption
    from mlpipe.io.tracking import _guarded_call

    with pytest.raises(ValueError) as caught:
        _wrapped_by_cleanup()
    assert isinstance(interruption(caught.value), _Signal)
    assert interruption(ValueError("plain")) is None
    with pytest.raises(_Signal):
        _guarded_call(_wrapped_by_cleanup)


def test_the_cli_reports_a_wrapped_sigterm_as_termination(capsys: pytest.CaptureFixture[str]):
    from mlpipe.cli import report_error
    from mlpipe.runtime import Terminated

    try:
        try:
            raise Terminated()
        except BaseException:
            raise RuntimeError("session close failed") from None
    except RuntimeError as err:
        err.__context__ = Terminated()  # "from None" hides it from tracebacks, not the chain
        code = report_error(err, verbose=False)
    assert code == 143
    assert capsys.readouterr().err.startswith("mlpipe: error: terminated (SIGTERM)")
