import datetime as dt

from tasks.core.config import build_config, flatten
from tasks.core.servers import mlflow_command, prefect_command, redact
from tasks.monitor import cooldown_blocks


def test_redact_hides_passwords_only():
    assert redact("postgresql://app:s3cret@db:5432/x") == "postgresql://app:***@db:5432/x"
    assert redact("postgresql://app@db/x") == "postgresql://app@db/x"
    assert redact("sqlite:///tmp/mlflow.db") == "sqlite:///tmp/mlflow.db"


def test_credentials_never_reach_mlflow_params():
    config = build_config(overrides=["tracking.uri=postgresql://u:hunter2@db/mlflow"])
    assert flatten(config)["tracking.uri"] == "postgresql://u:***@db/mlflow"


def test_servers_bind_localhost_by_default_and_use_one_mlflow_worker(tmp_path):
    cmd, env = mlflow_command("127.0.0.1", 5000, None, str(tmp_path), None)
    assert cmd[cmd.index("--host") + 1] == "127.0.0.1" and cmd[cmd.index("--workers") + 1] == "1"
    assert env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"
    assert cmd[cmd.index("--backend-store-uri") + 1].startswith("sqlite:///")
    cmd, env = prefect_command("127.0.0.1", 4200, "postgresql+asyncpg://u@h/db")
    assert cmd[-4:] == ["--host", "127.0.0.1", "--port", "4200"]
    assert env["PREFECT_API_DATABASE_CONNECTION_URL"] == "postgresql+asyncpg://u@h/db"
    assert "PREFECT_API_URL" not in env


def test_deployments_have_schedules_and_typed_parameters():
    from flows.deployments import build_deployments

    config = build_config(
        overrides=["schedule.cron=0 3 * * 1", "schedule.monitor_cron=*/15 * * * *",
                   "schedule.monitor_data=batch.csv"]
    )  # fmt: skip
    deployments = {d.name: d for d in build_deployments(config)}
    assert set(deployments) == {"mlpipe-training", "mlpipe-batch-predict", "mlpipe-monitoring"}
    training = deployments["mlpipe-training"]
    assert training.concurrency_limit == 1, "training runs queue instead of racing"
    assert training.schedules[0].schedule.cron == "0 3 * * 1"
    from flows.training import training as training_flow

    schema = training_flow.parameters.model_dump()
    assert "config" in schema["properties"] and "Config" in schema["definitions"], "a run form"
    assert deployments["mlpipe-monitoring"].parameters["data"] == "batch.csv"
    assert not deployments["mlpipe-batch-predict"].schedules


def test_cooldown():
    now = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)
    recent = [now - dt.timedelta(minutes=30)]
    assert cooldown_blocks(recent, now, minutes=60)
    assert not cooldown_blocks(recent, now, minutes=20)
    assert not cooldown_blocks([], now, minutes=60)
