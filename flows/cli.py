"""The ``mlpipe`` command line.

Heavy libraries are imported inside commands, so ``--help`` is instant.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

from flows.runtime import configure_environment, configure_logging

EXIT_FAILURE = 1


def _add_dataset_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="PATH", help="YAML config file (default: all defaults)")
    source = p.add_mutually_exclusive_group()
    source.add_argument(
        "--dataset", metavar="NAME", help="built-in dataset (see `mlpipe datasets`)"
    )
    source.add_argument("--data", metavar="PATH", help="CSV or Parquet file to train on")
    p.add_argument("--target", metavar="COL", help="target column (required with --data)")
    p.add_argument(
        "--task",
        choices=["binary", "multiclass", "regression"],
        help="learning task (inferred from the target when omitted)",
    )
    p.add_argument(
        "--set",
        dest="overrides",
        metavar="KEY=VALUE",
        action="append",
        default=[],
        help="override a config key, e.g. --set train.max_epochs=20 (repeatable)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and docs)."""
    parser = argparse.ArgumentParser(
        prog="mlpipe",
        description="Workflow-orchestrated MLOps pipeline: validate, clean, split, engineer "
        "features, train, evaluate and register models with Prefect, Great Expectations, "
        "PyTorch, scikit-learn and MLflow.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = sub.add_parser(
        "train",
        help="run the training flow (validate -> ... -> register)",
        description="Run the training flow and register the model in MLflow. The new version "
        "takes the `champion` alias only if it beats the current champion.",
    )
    _add_dataset_args(train)

    retrain = sub.add_parser(
        "retrain",
        help="trigger the training deployment (Prefect API), or train in-process without one",
        description="With PREFECT_API_URL set, start a run of the training deployment served "
        "by `mlpipe deploy` and print its id and UI link; without it, train in this process.",
    )
    _add_dataset_args(retrain)
    retrain.add_argument("--wait", action="store_true", help="wait for the run to finish")

    monitor = sub.add_parser(
        "monitor",
        help="validate a new batch, measure drift, retrain on drift (cooldown, de-duplicated)",
    )
    _add_dataset_args(monitor)
    monitor.add_argument("--batch", metavar="PATH", required=True, help="the new batch to check")

    deploy = sub.add_parser(
        "deploy",
        help="serve the training (cron), batch-predict and monitoring deployments",
        description="Register and serve the deployments against the Prefect server in "
        "PREFECT_API_URL; scheduled runs start from here. Ctrl-C stops serving.",
    )
    _add_dataset_args(deploy)

    config = sub.add_parser("config", help="print the resolved config (or its JSON schema)")
    _add_dataset_args(config)
    config.add_argument("--schema", action="store_true", help="print the JSON schema instead")

    validate = sub.add_parser(
        "validate",
        help="run only the data-quality gate and print its summary",
        description="Validate a dataset with its suite (expectations/NAME.json): critical "
        "failures and the quarantine rate decide the exit code (0 passed, 1 failed).",
    )
    _add_dataset_args(validate)
    validate.add_argument("--report", metavar="PATH", help="also write the HTML report here")
    validate.add_argument(
        "--quarantine", metavar="PATH", help="write quarantined rows (with reasons) to this Parquet"
    )

    expectations = sub.add_parser("expectations", help="manage Great Expectations suites")
    exp_sub = expectations.add_subparsers(dest="exp_command", required=True, metavar="ACTION")
    init = exp_sub.add_parser(
        "init",
        help="write expectations/NAME.json by profiling a reference snapshot",
        description="Profile the data into a suite a person can read and edit: columns, "
        "types, nulls, numeric ranges with a margin, category sets, id uniqueness, row-count "
        "bounds, target values. Each expectation has meta.severity: critical (fails the run) "
        "or row (quarantines the offending rows).",
    )
    _add_dataset_args(init)
    init.add_argument("--output", metavar="PATH", help="default: expectations/NAME.json")
    init.add_argument("--force", action="store_true", help="overwrite an existing suite")
    init.add_argument("--diff", action="store_true", help="show what would change; write nothing")
    init.add_argument("--ordered", action="store_true", help="also require the column order")

    predict = sub.add_parser(
        "predict",
        help="batch predictions from the champion (or --version) to CSV/Parquet",
        description="Validate raw rows with the model's suite (target not required; failing "
        "rows are quarantined), score them chunk by chunk and write predictions, class "
        "probabilities, model version and run id. The batch is recorded in MLflow.",
    )
    predict.add_argument("--model", metavar="NAME", required=True, help="registered model name")
    predict.add_argument("--input", metavar="PATH", required=True, help="CSV or Parquet input")
    predict.add_argument("--output", metavar="PATH", required=True, help=".csv or .parquet")
    predict.add_argument("--version", metavar="N", help="model version (default: champion)")
    predict.add_argument("--chunk-rows", type=int, default=100_000, metavar="N",
                         help="rows per chunk (default: 100000)")  # fmt: skip

    models = sub.add_parser(
        "models", help="list registered models: versions, aliases, metric, gate decision"
    )
    models.add_argument("--model", metavar="NAME", help="only this model, with its alias history")

    rollback = sub.add_parser(
        "rollback",
        help="move `champion` back (to the previous champion, or --to VERSION)",
        description="Move the champion alias back and record the move and its reason in the "
        "model's alias history.",
    )
    rollback.add_argument("--model", metavar="NAME", required=True, help="registered model name")
    rollback.add_argument("--to", metavar="VERSION", help="default: the previous champion")
    rollback.add_argument("--reason", default="manual rollback", help="recorded with the move")

    server = sub.add_parser("server", help="run a local Prefect or MLflow server (127.0.0.1)")
    server.add_argument("which", choices=["prefect", "mlflow"], help="which server")
    server.add_argument("--host", default="127.0.0.1", help="bind address (default: 127.0.0.1)")
    server.add_argument("--port", type=int, help="default: 4200 (prefect) or 5000 (mlflow)")
    server.add_argument(
        "--database-url",
        help="PostgreSQL URL; default: $PREFECT_API_DATABASE_CONNECTION_URL or "
        "$MLPIPE_MLFLOW_BACKEND_URI, else SQLite",
    )
    server.add_argument("--artifacts", default="mlruns", help="MLflow artifact folder")
    server.add_argument("--allowed-hosts", help="MLflow: extra Host headers to accept")

    health = sub.add_parser("health", help="exit 0 when a server answers (container healthchecks)")
    health.add_argument(
        "url", nargs="?", help="default: $MLPIPE_HEALTH_URL, else $PREFECT_API_URL/health"
    )

    sub.add_parser("datasets", help="list the embedded datasets")

    ui = sub.add_parser("ui", help="serve the MLflow UI for the tracking store")
    ui.add_argument("--host", default="127.0.0.1", help="bind address (default: 127.0.0.1)")
    ui.add_argument("--port", type=int, default=5000, help="port (default: 5000)")
    ui.add_argument("--backend-store-uri", help="default: MLFLOW_TRACKING_URI or ./mlflow.db")
    return parser


def _overrides(args: argparse.Namespace) -> list[str]:
    out: list[str] = []
    if args.dataset:
        out.append(f"dataset.source={args.dataset}")
    if args.data:
        out.append(f"dataset.source={json.dumps(args.data)}")
    if args.target:
        out.append(f"dataset.target={json.dumps(args.target)}")
    if args.task:
        out.append(f"dataset.task={args.task}")
    return out + list(args.overrides)


def _load_config(args: argparse.Namespace) -> Any:
    from tasks.core.config import load_config

    return load_config(args.config, _overrides(args))


def cmd_train(args: argparse.Namespace) -> int:
    """Validate inputs quickly, then run the training flow and print a summary."""
    config = _load_config(args)
    # Fail fast (before starting Prefect) on a missing file, unknown dataset or absent target.
    from tasks.load import read_dataset

    read_dataset(config.dataset)

    from flows.training import training

    result = training(config)
    state = "promoted to champion" if result.promoted else "not promoted"
    print(f"run {result.run_id}: {result.model_name} v{result.version} {state}")
    print(f"  {result.reason}")
    for key, value in sorted(result.metrics.items()):
        print(f"  {key:<28} {value:.4f}")
    print("  review: mlpipe ui  ->  http://127.0.0.1:5000")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    """Run the gate on a dataset and print the summary; exit 1 when it fails."""
    from pathlib import Path

    from tasks.core.datasets import dataset_name, load_source
    from tasks.core.report import render_html, render_markdown
    from tasks.core.run import write_parquet
    from tasks.load import resolve_schema
    from tasks.validate import apply_gate, failure_message, find_suite, run_checks, suite_for

    config = _load_config(args)
    spec = config.dataset
    frame = load_source(spec)
    path = find_suite(dataset_name(spec), spec.expectations)
    if path is not None:
        from tasks.core.gx import load_suite

        suite = load_suite(path)
    else:
        suite = suite_for(resolve_schema(frame, spec), None)
    report = run_checks(frame, suite, config.validation.engine)
    passing, quarantined, outcome = apply_gate(frame, report, config.validation.max_quarantine_rate)
    print(render_markdown(report, outcome), end="")
    drifted = _validate_drift(config, frame if passing.empty else passing)
    if args.report:
        Path(args.report).write_text(render_html(report, outcome), encoding="utf-8")
        print(f"HTML report: {args.report}")
    if args.quarantine and len(quarantined):
        write_parquet(quarantined, args.quarantine)
        print(f"quarantined rows: {args.quarantine}")
    if not outcome.passed:
        print(f"mlpipe: error: {failure_message(report, outcome)}", file=sys.stderr)
        return EXIT_FAILURE
    if drifted and config.validation.drift.gate == "fail":
        print(f"mlpipe: error: drift in {', '.join(drifted)}", file=sys.stderr)
        return EXIT_FAILURE
    return 0


def _validate_drift(config: Any, frame: Any) -> list[str]:
    """Print drift against the champion (when there is one); return the drifted columns."""
    from tasks.core import tracking
    from tasks.core.datasets import dataset_name
    from tasks.drift import measure
    from tasks.load import resolve_schema

    if config.validation.drift.gate == "off":
        return []
    tracking.configure(config.tracking.uri)
    model_name = config.tracking.model_name or f"mlpipe-{dataset_name(config.dataset)}"
    try:
        schema = resolve_schema(frame, config.dataset)
    except Exception as err:  # no usable target: drift needs only the features
        print(f"\ndrift not measured: {err}")
        return []
    measured = measure(frame, schema, model_name, config.validation.drift)
    if measured is None:
        print(f"\ndrift not measured: {model_name} has no champion with a reference profile")
        return []
    version, drift = measured
    print(f"\n(reference: {model_name} v{version})")
    print(drift.markdown(), end="")
    return drift.drifted


def cmd_expectations(args: argparse.Namespace) -> int:
    """``expectations init``: profile the data into a suite file."""
    import difflib
    from pathlib import Path

    from tasks.core.errors import ConfigError
    from tasks.core.suites import suite_from_frame
    from tasks.load import read_dataset

    config = _load_config(args)
    frame, schema = read_dataset(config.dataset)
    suite = suite_from_frame(frame, schema, ordered=args.ordered)
    target = Path(args.output or f"expectations/{schema.name}.json")
    text = json.dumps(suite, indent=2, ensure_ascii=False) + "\n"
    if args.diff:
        old = target.read_text(encoding="utf-8") if target.exists() else ""
        diff = difflib.unified_diff(
            old.splitlines(keepends=True), text.splitlines(keepends=True),
            fromfile=f"{target} (current)", tofile=f"{target} (profiled)",
        )  # fmt: skip
        out = "".join(diff)
        print(out if out else f"{target}: no changes", end="" if out else "\n")
        return 0
    if target.exists() and not args.force:
        raise ConfigError(f"{target} exists: use --force to overwrite or --diff to compare")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".json.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(target)
    print(f"wrote {target}: {len(suite['expectations'])} expectations from {len(frame)} rows")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    """Run the batch prediction flow and print where the results are."""
    from pathlib import Path

    from tasks.core.errors import DataError

    source, target = Path(args.input), Path(args.output)
    if not source.is_file():
        raise DataError(f"input file not found: {source}")
    if source.stat().st_size == 0:
        raise DataError(f"input file is empty: {source}")
    for path in (source, target):
        if path.suffix.lower() not in {".csv", ".tsv", ".txt", ".parquet", ".pq"}:
            raise DataError(
                f"unsupported file type '{path.suffix}' for {path}: use .csv or .parquet"
            )
    if args.chunk_rows < 1:
        raise DataError("--chunk-rows must be at least 1")

    from flows.batch_predict import PredictRequest, batch_predict

    request = PredictRequest(model=args.model, input=str(source), output=str(target),
                             version=args.version, chunk_rows=args.chunk_rows)  # fmt: skip
    result = batch_predict(request)
    print(f"{result.rows_predicted} of {result.rows_in} rows predicted with {args.model} "
          f"v{result.model_version} -> {result.output}")  # fmt: skip
    if result.quarantine:
        print(f"{result.rows_quarantined} rows quarantined -> {result.quarantine}")
    return 0


def _registry_error(err: Exception, name: str) -> Exception:
    from tasks.core.errors import ConfigError

    text = str(err).splitlines()[0] if str(err) else type(err).__name__
    return ConfigError(f"model '{name}': {text}")


def cmd_models(args: argparse.Namespace) -> int:
    """Print registered models, their versions and (with --model) the alias history."""
    from tasks.core import tracking

    tracking.configure()
    names = [args.model] if args.model else [m.name for m in tracking.list_models()]
    if not names:
        print("no registered models yet: run `mlpipe train`")
        return 0
    for name in names:
        try:
            versions = tracking.model_versions(name)
            by_version = tracking.aliases(name)
        except Exception as err:
            raise _registry_error(err, name) from None
        if not versions:
            raise _registry_error(Exception("not registered"), name)
        print(f"{name}")
        print(f"  {'version':>7}  {'aliases':<10} {'metric':<16} {'value':>9}  decision")
        for v in versions:
            aliases = ",".join(by_version.get(str(v.version), [])) or "-"
            metric = v.tags.get("mlpipe.primary_metric", "-").removeprefix("test_")
            value = v.tags.get("mlpipe.primary_value", "-")
            decision = v.tags.get("mlpipe.decision", "-")
            print(f"  {v.version:>7}  {aliases:<10} {metric:<16} {value:>9}  {decision}")
        if args.model:
            print("  alias history:")
            for move in tracking.alias_history(name):
                print(f"    {move['time']}  {move['alias']}: v{move['from'] or '-'} -> "
                      f"v{move['to']}  ({move['reason']})")  # fmt: skip
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    """Move `champion` back and record why."""
    from tasks.core import tracking
    from tasks.core.errors import ConfigError

    tracking.configure()
    try:
        history = tracking.alias_history(args.model)
        current = tracking.champion(args.model)
    except Exception as err:
        raise _registry_error(err, args.model) from None
    if current is None:
        raise ConfigError(f"model '{args.model}' has no champion to roll back")
    target = args.to
    if target is None:
        previous = [
            m["from"] for m in reversed(history) if m["to"] == current.version and m["from"]
        ]
        if not previous:
            raise ConfigError(f"model '{args.model}': no earlier champion; pass --to VERSION")
        target = previous[0]
    known = {str(v.version) for v in tracking.model_versions(args.model)}
    if str(target) not in known:
        raise ConfigError(f"model '{args.model}' has no version {target}")
    if str(target) == current.version:
        raise ConfigError(f"model '{args.model}': v{target} is already champion")
    move = tracking.move_alias(args.model, str(target), f"rollback: {args.reason}")
    print(f"{args.model}: champion v{move['from']} -> v{move['to']} ({move['reason']})")
    return 0


def _prefect_api() -> str | None:
    return os.environ.get("PREFECT_API_URL") or None


def cmd_retrain(args: argparse.Namespace) -> int:
    """Trigger the training deployment, or train in-process when no server is configured."""
    config = _load_config(args)
    api = _prefect_api()
    if api is None:
        print("PREFECT_API_URL is not set: training in this process", file=sys.stderr)
        return cmd_train(args)
    from prefect.deployments import run_deployment

    from tasks.monitor import TRAINING_DEPLOYMENT

    try:
        run: Any = run_deployment(
            TRAINING_DEPLOYMENT, parameters={"config": config.model_dump(mode="json")},
            timeout=None if args.wait else 0, tags=["mlpipe:manual"],
        )  # fmt: skip
    except Exception as err:
        from tasks.core.errors import ConfigError

        raise ConfigError(
            f"cannot start {TRAINING_DEPLOYMENT} on {api} ({type(err).__name__}: {err}); "
            "is `mlpipe deploy` serving?"
        ) from None
    ui = os.environ.get("PREFECT_UI_URL") or api.removesuffix("/api")
    print(f"flow run {run.id}: {ui}/runs/flow-run/{run.id}")
    if not args.wait:
        return 0
    print(f"finished: {run.state.name if run.state else 'unknown'}")
    return 0 if run.state and run.state.is_completed() else EXIT_FAILURE


def cmd_monitor(args: argparse.Namespace) -> int:
    """Run the monitoring flow on a batch and print its decision."""
    from pathlib import Path

    from tasks.core.errors import DataError

    config = _load_config(args)
    if not Path(args.batch).is_file():
        raise DataError(f"batch file not found: {args.batch}")
    from flows.monitoring import monitoring

    decision = monitoring(config, args.batch)
    run = f" (flow run {decision.flow_run_id})" if decision.flow_run_id else ""
    print(f"{decision.action}: {decision.reason}{run}")
    return 0


def cmd_deploy(args: argparse.Namespace) -> int:
    """Serve the deployments until Ctrl-C."""
    from tasks.core.errors import ConfigError

    config = _load_config(args)
    if _prefect_api() is None:
        raise ConfigError(
            "mlpipe deploy needs a Prefect server: start one (`mlpipe server prefect` or "
            "`make servers`) and export PREFECT_API_URL=http://127.0.0.1:4200/api"
        )
    from flows.deployments import serve_deployments

    cron = config.schedule.cron or "none"
    print(f"serving mlpipe-training (cron {cron} {config.schedule.timezone}), "
          "mlpipe-batch-predict, mlpipe-monitoring; Ctrl-C to stop", flush=True)  # fmt: skip
    with contextlib.suppress(KeyboardInterrupt):
        serve_deployments(config)
    print("stopped serving")
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    """Print the resolved config as YAML, or the JSON schema."""
    import yaml

    if args.schema:
        from tasks.core.config import Config

        print(json.dumps(Config.model_json_schema(), indent=2))
        return 0
    print(yaml.safe_dump(_load_config(args).model_dump(mode="json"), sort_keys=False), end="")
    return 0


def cmd_datasets(_: argparse.Namespace) -> int:
    """List built-in datasets."""
    from tasks.core.datasets import BUILTINS

    for d in BUILTINS.values():
        print(f"{d.name:<14} target={d.target:<8} {d.task:<10} {d.description}")
        print(f"{'':<14} source: {d.origin}")
    return 0


def cmd_server(args: argparse.Namespace) -> int:
    """Run a Prefect or MLflow server in the foreground until Ctrl-C."""
    from tasks.core.servers import mlflow_command, prefect_command, redact

    if args.which == "prefect":
        port = args.port or 4200
        cmd, env = prefect_command(args.host, port, args.database_url)
        db = redact(env.get("PREFECT_API_DATABASE_CONNECTION_URL", "SQLite in $PREFECT_HOME"))
        print(f"Prefect server on http://{args.host}:{port} (database: {db}); use "
              f"PREFECT_API_URL=http://{args.host}:{port}/api", flush=True)  # fmt: skip
    else:
        port = args.port or 5000
        cmd, env = mlflow_command(args.host, port, args.database_url, args.artifacts,
                                  args.allowed_hosts)  # fmt: skip
        backend = redact(cmd[cmd.index("--backend-store-uri") + 1])
        print(f"MLflow server on http://{args.host}:{port} (backend: {backend}); use "
              f"MLFLOW_TRACKING_URI=http://{args.host}:{port}", flush=True)  # fmt: skip
    try:
        return subprocess.call(cmd, env=env)
    except KeyboardInterrupt:
        return 0


def cmd_health(args: argparse.Namespace) -> int:
    """Exit 0 when the URL answers 200 within a few seconds."""
    from tasks.core.errors import ConfigError
    from tasks.core.servers import wait_healthy

    api = _prefect_api()
    url = args.url or os.environ.get("MLPIPE_HEALTH_URL") or (f"{api}/health" if api else None)
    if not url:
        raise ConfigError("no URL: pass one, or set MLPIPE_HEALTH_URL or PREFECT_API_URL")
    if wait_healthy(url, timeout=5):
        return 0
    print(f"mlpipe: error: {url} is not healthy", file=sys.stderr)
    return EXIT_FAILURE


def cmd_ui(args: argparse.Namespace) -> int:
    """Run ``mlflow server`` for the local (or configured) store, bound to 127.0.0.1."""
    from tasks.core.tracking import resolve_uri

    uri = args.backend_store_uri or resolve_uri()
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    cmd = [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", uri,
        "--host", args.host, "--port", str(args.port), "--workers", "1",
    ]  # fmt: skip
    print(f"MLflow UI for {uri} on http://{args.host}:{args.port} (Ctrl-C to stop)", flush=True)
    try:
        return subprocess.call(cmd, env=env)
    except KeyboardInterrupt:
        return 0


COMMANDS = {
    "train": cmd_train,
    "validate": cmd_validate,
    "expectations": cmd_expectations,
    "predict": cmd_predict,
    "models": cmd_models,
    "rollback": cmd_rollback,
    "config": cmd_config,
    "datasets": cmd_datasets,
    "ui": cmd_ui,
    "server": cmd_server,
    "health": cmd_health,
    "retrain": cmd_retrain,
    "deploy": cmd_deploy,
    "monitor": cmd_monitor,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``mlpipe`` console script."""
    args = build_parser().parse_args(argv)
    configure_environment()
    configure_logging(args.verbose)
    from tasks.core.errors import MlpipeError

    try:
        return COMMANDS[args.command](args)
    except MlpipeError as err:
        print(f"mlpipe: error: {err}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print("mlpipe: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # Output piped into `head` and closed early: not an error of ours.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
