import datetime as dt

import pytest

from mlpipe.config import build_config
from mlpipe.errors import ConfigError
from mlpipe.secrets import has_secret, redact, redact_obj
from mlpipe.servers import mlflow_command, no_secret_in_argv, prefect_command
from tasks.monitor import cooldown_blocks


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("postgresql://app:s3cret@db:5432/x", "postgresql://app:***@db:5432/x"),
        ("postgresql://:s3cret@db/x", "postgresql://:***@db/x"),
        ("postgresql://u:s3cret@h1:5432,h2:5433/x", "postgresql://u:***@h1:5432,h2:5433/x"),
        ("postgresql://u:p@ss@db/x", "postgresql://u:***@db/x"),
        ("postgresql://u:pa/ss@db:5432/x", "postgresql://u:***@db:5432/x"),
        ('{"uri":"postgresql://u:a/b@db/x","mail":"ops@example.com"}',
         '{"uri":"postgresql://u:***@db/x","mail":"ops@example.com"}'),
        ("'mysql://root:p/w:x@db/x'", "'mysql://root:***@db/x'"),
        ("postgresql://db/x?user=u&password=s3cret&sslmode=require",
         "postgresql://db/x?user=u&password=***&sslmode=require"),
        ("host=db user=u password=s3cret dbname=x", "host=db user=u password=*** dbname=x"),
        ("error connecting to mysql+pymysql://root:s3cret@10.0.0.1/db: refused",
         "error connecting to mysql+pymysql://root:***@10.0.0.1/db: refused"),
        ("postgresql://app@db/x", "postgresql://app@db/x"),
        ("sqlite:///tmp/mlflow.db", "sqlite:///tmp/mlflow.db"),
    ],
)  # fmt: skip
def test_redact_hides_every_password_and_keeps_the_rest(text: str, expected: str):
    assert redact(text) == expected
    assert has_secret(text) == (text != expected)


def test_redact_obj_walks_nested_data():
    data = {"a": ["postgresql://u:x@h/d", {"b": "password=x"}], "n": 3}
    assert redact_obj(data) == {"a": ["postgresql://u:***@h/d", {"b": "password=***"}], "n": 3}


def test_servers_get_database_urls_from_the_environment_not_argv(tmp_path):
    secret = "postgresql://u:SENTINEL@db/mlflow"
    cmd, env = mlflow_command("127.0.0.1", 5000, secret, str(tmp_path), None)
    assert not any("SENTINEL" in part for part in cmd), "no password on the command line"
    assert env["MLFLOW_BACKEND_STORE_URI"] == secret
    assert cmd[cmd.index("--host") + 1] == "127.0.0.1" and cmd[cmd.index("--workers") + 1] == "1"
    assert env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"
    cmd, env = prefect_command("127.0.0.1", 4200, "postgresql+asyncpg://u:SENTINEL@h/db")
    assert cmd[-4:] == ["--host", "127.0.0.1", "--port", "4200"]
    assert not any("SENTINEL" in part for part in cmd)
    assert env["PREFECT_API_DATABASE_CONNECTION_URL"].endswith("@h/db")
    assert "PREFECT_API_URL" not in env
    with pytest.raises(ConfigError, match="visible to every user"):
        no_secret_in_argv(secret, "--database-url", "MLPIPE_MLFLOW_BACKEND_URI")
    no_secret_in_argv("postgresql://u@db/mlflow", "--database-url", "X")


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


def test_pieces_of_a_password_quoted_by_a_driver_are_hidden_too():
    url = "postgresql://u:Secret@PIECE1234@db:5432/x"
    assert redact(url) == "postgresql://u:***@db:5432/x"
    # The driver reads the password up to the first "@" and quotes the rest as a host name.
    message = 'could not translate host name "PIECE1234@db" to address'
    assert redact(message) == 'could not translate host name "***@db" to address'


def test_health_of_a_tcp_url_is_a_connection():
    import socket

    from mlpipe.servers import wait_healthy

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert wait_healthy(f"tcp://127.0.0.1:{port}", timeout=5)
    assert not wait_healthy(f"tcp://127.0.0.1:{port}", timeout=1)  # closed now
