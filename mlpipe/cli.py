"""The ``mlpipe`` command line.

Heavy libraries are imported inside commands, so ``--help`` is instant. Every failure ends in one
line ``mlpipe: error: ...`` and a non-zero exit (``-v`` adds the traceback).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import subprocess
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mlpipe import __version__
from mlpipe.runtime import Terminated, configure_environment, configure_logging, handle_sigterm
from mlpipe.secrets import redact

EXIT_FAILURE = 1
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143


def _add_dataset_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="PATH", help="YAML config file (default: all defaults)")
    source = p.add_mutually_exclusive_group()
    source.add_argument(
        "--dataset", metavar="NAME", help="built-in dataset (see `mlpipe datasets`)"
    )
    source.add_argument(
        "--data",
        metavar="PATH|URL",
        help="CSV or Parquet file, folder or glob; a URL (https://, s3://, file://); or a "
        "database URL (postgresql://user@host/db, sqlite:///file.db) with --set "
        "dataset.query=SQL or dataset.table=NAME",
    )
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
        help="override a config key, e.g. --set train.max_epochs=20 (repeatable; "
        "`mlpipe config --schema` lists every key)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and docs)."""
    parser = argparse.ArgumentParser(
        prog="mlpipe",
        description="Workflow-orchestrated MLOps pipeline: validate, clean, split, engineer "
        "features, train, evaluate and register models with Prefect, Great Expectations, "
        "PyTorch, scikit-learn and MLflow.",
        epilog="Examples: mlpipe train --dataset penguins | mlpipe train --data sales.csv "
        "--target churned | mlpipe models | mlpipe predict --model mlpipe-penguins --input "
        "new.csv --output scored.parquet",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging, tracebacks")
    parser.add_argument("--version", action="version", version=f"mlpipe {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = sub.add_parser(
        "train",
        help="run the training flow (validate -> ... -> register -> promote)",
        description="Run the training flow and register the model in MLflow. The new version "
        "takes the `champion` alias only if it is sound (better than a trivial predictor, not "
        "worse than the run's baseline) and beats the current champion on shared test rows.",
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
    monitor.add_argument(
        "--batch",
        metavar="PATH|URL",
        required=True,
        help="the new batch to check: one CSV or Parquet file, local or a URL",
    )

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
    config.add_argument(
        "--no-data",
        action="store_true",
        help="do not read the data (by default the target, task and column roles it resolves "
        "to are printed after the config, and the pre-flight checks run)",
    )

    validate = sub.add_parser(
        "validate",
        help="run only the data-quality gate and print its summary",
        description="Validate data with a suite: the one a registered model was trained with "
        "(--model), an explicit file (--suite), or expectations/NAME.json for the dataset name. "
        "Critical failures and the quarantine rate decide the exit code (0 passed, 1 failed).",
    )
    _add_dataset_args(validate)
    validate.add_argument(
        "--model",
        metavar="NAME",
        help="judge with this model's suite (new-batch rules) and measure drift against it",
    )
    validate.add_argument("--version", metavar="N", help="model version (default: champion)")
    validate.add_argument("--suite", metavar="PATH", help="suite JSON file to use")
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
        description="Validate raw rows with the suite the model was trained with (target not "
        "required; failing rows are quarantined), score them chunk by chunk and write "
        "predictions, class probabilities, model version and run id. The batch is recorded "
        "in MLflow.",
    )
    predict.add_argument("--model", metavar="NAME", required=True, help="registered model name")
    predict.add_argument(
        "--input",
        metavar="PATH|URL",
        required=True,
        help="one CSV or Parquet file (not a folder), local or a URL (https://, s3://, ...)",
    )
    predict.add_argument(
        "--output",
        metavar="PATH|URL",
        required=True,
        help=".csv or .parquet, local or a writable URL (s3://, file://, ...)",
    )
    predict.add_argument("--version", metavar="N", help="model version (default: champion)")
    predict.add_argument(
        "--chunk-rows",
        type=int,
        default=100_000,
        metavar="N",
        help="rows per chunk (default: 100000)",
    )
    predict.add_argument("--encoding", default="auto", help="text encoding of a CSV input")
    predict.add_argument(
        "--engine",
        choices=["local", "dask"],
        default="local",
        help="score here (default) or on a Dask cluster: chunks are staged beside --output",
    )
    predict.add_argument(
        "--address",
        metavar="tcp://HOST:PORT",
        help="with --engine dask: an existing scheduler (default: a local cluster)",
    )
    predict.add_argument(
        "--workers",
        type=int,
        default=2,
        metavar="N",
        help="with --engine dask and no --address: local worker processes (default: 2)",
    )

    again = sub.add_parser(
        "reproduce",
        help="train a registered version again from its recorded config and compare metrics",
        description="Train a registered version again from what its run recorded (config, "
        "data digest, git commit, window batches), under the experiment mlpipe-reproduce and "
        "the model <MODEL>-reproduce (the original's registry and champion are untouched), "
        "and report whether the metrics equal the recorded ones. Refuses when the code or the "
        "data differ from the recorded ones, unless --force.",
    )
    again.add_argument("model", help="registered model name, e.g. mlpipe-penguins")
    again.add_argument("version", help="version number")
    again.add_argument("--data", help="the data, when it moved since (its digest is checked)")
    again.add_argument(
        "--force", action="store_true", help="run even when the code or data differ (warns)"
    )

    models = sub.add_parser(
        "models", help="list registered models: versions, aliases, metric, gate decision"
    )
    models.add_argument("--model", metavar="NAME", help="only this model, with its alias history")

    rollback = sub.add_parser(
        "rollback",
        help="move `champion` back (to the previous champion, or --to VERSION)",
        description="Move the champion alias back and record the move and its reason in the "
        "model's alias history. Only a version that passed its smoke test and the gate may "
        "become champion, unless --force with --reason.",
    )
    rollback.add_argument("--model", metavar="NAME", required=True, help="registered model name")
    rollback.add_argument("--to", metavar="VERSION", help="default: the previous champion")
    rollback.add_argument("--reason", help="recorded with the move (required with --force)")
    rollback.add_argument(
        "--force",
        action="store_true",
        help="allow a version that is not eligible (failed or never judged)",
    )

    server = sub.add_parser(
        "server", help="run a local Prefect, MLflow or Dask (scheduler + workers) server"
    )
    server.add_argument("which", choices=["prefect", "mlflow", "dask"], help="which server")
    server.add_argument("--host", default="127.0.0.1", help="bind address (default: 127.0.0.1)")
    server.add_argument(
        "--port", type=int, help="default: 4200 (prefect), 5000 (mlflow) or 8786 (dask)"
    )
    server.add_argument(
        "--workers", type=int, default=2, help="dask: worker processes (default: 2)"
    )
    server.add_argument(
        "--database-url",
        help="database URL without a password (put passwords in the environment); default: "
        "$PREFECT_API_DATABASE_CONNECTION_URL or $MLPIPE_MLFLOW_BACKEND_URI, else SQLite",
    )
    server.add_argument("--artifacts", default="mlruns", help="MLflow artifact folder")
    server.add_argument("--allowed-hosts", help="MLflow: extra Host headers to accept")

    servers = sub.add_parser(
        "servers",
        help="start, stop or list Prefect and MLflow in the background (what `make servers` runs)",
        description="start: launch `mlpipe server prefect` and `mlpipe server mlflow` in the "
        "background, wait until both answer their health checks, and fail with the log tail "
        "when one does not. stop: stop only the servers start launched that are still running "
        "as launched. status: which are running.",
    )
    servers.add_argument("action", choices=["start", "stop", "status"])
    servers.add_argument("--host", default="127.0.0.1", help="bind address (default: 127.0.0.1)")
    servers.add_argument("--prefect-port", type=_tcp_port, default=4200, help="default: 4200")
    servers.add_argument("--mlflow-port", type=_tcp_port, default=5000, help="default: 5000")
    servers.add_argument(
        "--state-dir",
        type=Path,
        default=Path(".mlpipe"),
        help="where the logs and process records live (default: .mlpipe)",
    )
    servers.add_argument(
        "--timeout", type=float, default=120.0, help="start: seconds to wait for health (120)"
    )

    health = sub.add_parser("health", help="exit 0 when a server answers (container healthchecks)")
    health.add_argument(
        "url", nargs="?", help="default: $MLPIPE_HEALTH_URL, else $PREFECT_API_URL/health"
    )

    sub.add_parser("datasets", help="list the embedded datasets")

    completion = sub.add_parser(
        "completion",
        help="print a shell completion script (bash or zsh)",
        description="Print a script that completes mlpipe's commands, their options and "
        "their fixed choices, then file names.",
        epilog="examples:\n  source <(mlpipe completion bash)      # this shell; add it to "
        "~/.bashrc to keep it\n  source <(mlpipe completion zsh)       # zsh, in ~/.zshrc",
        formatter_class=_Formatter,
    )
    completion.add_argument("shell", choices=["bash", "zsh"])

    serve = sub.add_parser(
        "serve",
        help="a REST endpoint for the champion (or --version) on 127.0.0.1",
        description="Serve a registered model with MLflow's scoring server until Ctrl-C or "
        "SIGTERM. POST raw rows (the training columns, no target; null for missing values) to "
        "/invocations and get predictions and class probabilities back, as from "
        "`mlpipe predict`. The version is fixed when the server starts: a later change of "
        "`champion` needs a restart.",
        epilog="example:\n  mlpipe serve --model mlpipe-penguins --port 5001\n"
        "  curl -s http://127.0.0.1:5001/invocations -H 'Content-Type: application/json' -d \\\n"
        '    \'{"dataframe_records": [{"island": "Biscoe", "bill_length_mm": 45.1, '
        '"bill_depth_mm": 14.5, "flipper_length_mm": 215, "body_mass_g": 5000, '
        '"sex": null, "year": 2008}]}\'',
        formatter_class=_Formatter,
    )
    serve.add_argument("--model", metavar="NAME", required=True, help="registered model name")
    serve.add_argument("--version", metavar="N", help="model version (default: champion)")
    serve.add_argument("--host", default="127.0.0.1", help="bind address (default: 127.0.0.1)")
    serve.add_argument(
        "--port", type=_tcp_port, default=5001, help="port (default: 5001; 0: a free one, printed)"
    )

    ui = sub.add_parser("ui", help="serve the MLflow UI for the tracking store")
    ui.add_argument("--host", default="127.0.0.1", help="bind address (default: 127.0.0.1)")
    ui.add_argument("--port", type=int, default=5000, help="port (default: 5000)")
    ui.add_argument(
        "--backend-store-uri", help="default: MLFLOW_TRACKING_URI or ./mlflow.db (no password here)"
    )
    _add_examples(sub)
    return parser


# Shown under each command's --help (tests parse every one of them).
EXAMPLES = {
    "train": [
        "mlpipe train                                    # digits, the default config",
        "mlpipe train --dataset penguins --set train.max_epochs=30",
        "mlpipe train --data sales.csv --target churned --set train.workers=2",
        "mlpipe train --data postgresql://me@db/shop --target churned "
        "--set 'dataset.query=SELECT * FROM orders ORDER BY id'",
    ],
    "retrain": [
        "mlpipe retrain --dataset penguins --wait   # the deployment, with PREFECT_API_URL"
    ],
    "monitor": ["mlpipe monitor --dataset penguins --batch new_birds.csv"],
    "deploy": ["mlpipe deploy --dataset penguins --set \"schedule.cron='0 3 * * *'\""],
    "config": [
        "mlpipe config --dataset penguins        # the config, then the roles it resolves to",
        "mlpipe config --data sales.csv --no-data      # without reading the data",
        "mlpipe config --schema",
    ],
    "validate": [
        "mlpipe validate --data new.csv --model mlpipe-penguins --report report.html",
        "mlpipe validate --dataset penguins",
    ],
    "expectations": ["mlpipe expectations init --data sales.csv --target churned --diff"],
    "predict": [
        "mlpipe predict --model mlpipe-penguins --input new.csv --output scored.parquet",
        "mlpipe predict --model mlpipe-penguins --input big.parquet --output out.csv --engine dask",
    ],
    "models": ["mlpipe models", "mlpipe models --model mlpipe-penguins   # with alias history"],
    "rollback": ["mlpipe rollback --model mlpipe-penguins --reason 'bad labels in v4'"],
    "reproduce": [
        "mlpipe reproduce mlpipe-digits 3",
        "mlpipe reproduce mlpipe-sales 2 --data /new/place/sales.csv --force",
    ],
    "server": ["mlpipe server mlflow --port 5000", "mlpipe server dask --port 0 --workers 2"],
    "servers": [
        "mlpipe servers start --prefect-port 4201 --mlflow-port 5001",
        "mlpipe servers status",
        "mlpipe servers stop",
    ],
    "health": ["mlpipe health http://127.0.0.1:5000/health"],
    "datasets": ["mlpipe datasets"],
    "ui": ["mlpipe ui --port 5000"],
}


def _add_examples(sub: argparse._SubParsersAction) -> None:
    """Give every command a description (its help line when it has none) and examples."""
    helps = {action.dest: action.help for action in sub._choices_actions}
    for name, command in sub.choices.items():
        if name not in EXAMPLES:
            continue
        command.description = command.description or f"{(helps.get(name) or '').capitalize()}."
        command.epilog = "examples:\n" + "\n".join(f"  {line}" for line in EXAMPLES[name])
        command.formatter_class = _Formatter


class _Formatter(argparse.HelpFormatter):
    """Wraps descriptions; keeps text with line breaks (the examples) as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if "\n" in text:
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


def _tcp_port(text: str) -> int:
    """A port number, 0-65535 (argparse type)."""
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"not a port number (0-65535): {text!r}")
    return port


def _overrides(args: argparse.Namespace) -> list[str]:
    out: list[str] = []
    if args.dataset:
        out.append(f"dataset.source={json.dumps(args.dataset)}")
    if args.data:
        # Recorded as an absolute path when it names something here: a retrain, a scheduled
        # run or `mlpipe reproduce` started from another folder reads the same data.
        data = str(Path(args.data).resolve()) if Path(args.data).exists() else args.data
        data = _password_to_environment(data)
        out.append(f"dataset.source={json.dumps(data)}")
    if args.target:
        out.append(f"dataset.target={json.dumps(args.target)}")
    if args.task:
        out.append(f"dataset.task={args.task}")
    return out + list(args.overrides)


def _password_to_environment(data: str) -> str:
    """A database URL's password moved into this process's environment, never the config.

    Configs are logged, stored with every run and sent to Prefect; the password reaches the
    database through ``MLPIPE_DATA_PASSWORD`` (inherited by the flow runs this process
    starts) and is hidden in anything printed.
    """
    from mlpipe.io.sources import PASSWORD_ENV, is_database, split_password
    from mlpipe.secrets import hide

    if not is_database(data):
        return data
    bare, password = split_password(data)
    if password is not None:
        hide(password)
        os.environ[PASSWORD_ENV] = password
    return bare


def _load_config(args: argparse.Namespace) -> Any:
    from mlpipe.config import load_config

    return load_config(args.config, _overrides(args))


def _prepare(config: Any, folder: Path, extra: Any = None) -> Any:
    """Copy the data into ``folder`` and run the pre-flight, before Prefect or MLflow start.

    Returns the staged data (:class:`~mlpipe.handoff.LoadedData`) the flow adopts.
    ``extra``: accepted monitoring batches read after the source (a reproduced window).
    """
    from mlpipe import preflight
    from mlpipe.handoff import LoadedData

    ingested, schema = preflight.prepare(config, folder / "raw", extra)
    return LoadedData.of(config.dataset, ingested.path, schema, ingested.digest, ingested.rows)


def cmd_train(args: argparse.Namespace) -> int:
    """Check inputs quickly, then run the training flow and print a summary."""
    config = _load_config(args)
    from mlpipe import smoke
    from mlpipe.io.runs import staging
    from mlpipe.io.tracking import resolve_uri
    from mlpipe.orchestration import prestart_server, run_training, stop_prestarted
    from mlpipe.preflight import check_execution, check_paths

    check_paths(config)  # the data is staged under runs_dir
    check_execution(config.execution)  # before a long load, not after it
    if config.train.workers > 1 and config.execution.engine == "local":
        from mlpipe.io.engine import LOCAL

        LOCAL.check_gang(config.train.workers)
    elif config.train.workers > 1:
        from mlpipe.io.engine import check_ranks

        check_ranks(config.execution, config.train.workers)
    prestart_server()  # the temporary Prefect server starts while the data is checked
    try:
        with staging(config.runs_dir) as folder:
            staged = _prepare(config, folder)
            # The smoke test's fresh interpreter imports its libraries while Prefect starts.
            smoke.prestart(resolve_uri(config.tracking.uri))
            result = run_training(config, staged)  # adopts the server and the data
    finally:
        stop_prestarted()  # only if nothing adopted it (a failed pre-flight)
    state = "promoted to champion" if result.promoted else "not promoted"
    print(f"run {result.run_id}: {result.model_name} v{result.version} {state}")
    print(f"  {result.reason}")
    for key, value in sorted(result.metrics.items()):
        if not key.startswith("trivial_"):
            print(f"  {key:<28} {value:.4f}")
    print("  review: mlpipe ui  ->  http://127.0.0.1:5000")
    return 0


def cmd_reproduce(args: argparse.Namespace) -> int:
    """Train a registered version again from what it recorded; compare the metrics."""
    from mlpipe import reproduce
    from mlpipe.data.ingest import Extra
    from mlpipe.errors import ConfigError
    from mlpipe.io import tracking
    from mlpipe.io.runs import PROJECT_ROOT, staging
    from mlpipe.orchestration import run_training

    tracking.configure()
    found = reproduce.recorded(args.model, args.version)
    config = reproduce.rerun_config(found, args.data)

    def warn(text: str) -> None:
        print(f"mlpipe: warning: {text}", file=sys.stderr)

    problems = []
    code = reproduce.code_problem(found, tracking.git_info(PROJECT_ROOT))
    if code:
        problems.append(code)
    gone = reproduce.missing_batches(found)
    if gone:
        problems.append(f"{len(gone)} accepted batch(es) of its window are gone ({gone[0]}, ...)")
    reproduce.refuse_or_warn(problems, args.force, warn)  # before the data is read
    missing = reproduce.missing_source(config)
    if missing:
        raise ConfigError(f"{missing}: pass --data PATH")
    extra = Extra(files=tuple(p for p in found.window if p.exists())) if found.window else None
    with staging(config.runs_dir) as folder:
        staged = _prepare(config, folder, extra)
        data = reproduce.data_problem(found, staged.digest)
        reproduce.refuse_or_warn([data] if data else [], args.force, warn)
        result = run_training(config, staged)
    print(
        f"reproduced {found.model} v{found.version} as {result.model_name} v{result.version} "
        f"(run {result.run_id}, experiment {reproduce.EXPERIMENT})"
    )
    differ, unrecorded = [], []
    for name, then, now in reproduce.compare(found, result.metrics):
        same = then is not None and then == now
        if then is None:
            unrecorded.append(name)
        elif not same:
            differ.append(f"{name} {now:.6g} (recorded {then:.6g})")
        shown = "-" if then is None else f"{then:.6g}"
        print(f"  {name:<28} recorded {shown:>10}  now {now:<10.6g} {'same' if same else ''}")
    from mlpipe.errors import MlpipeError

    if differ:
        raise MlpipeError(f"the metrics differ from the recorded ones: {', '.join(differ)}")
    if unrecorded:
        raise MlpipeError(
            f"{len(unrecorded)} metric(s) were not recorded by the version, so not compared: "
            f"{', '.join(unrecorded)}"
        )
    print("the metrics match the recorded ones exactly")
    return 0


def _resolve_validation_suite(
    args: argparse.Namespace, config: Any, frame: Any
) -> tuple[Any, Any, Any]:
    """(suite, schema or None, served model or None) for ``mlpipe validate``."""
    from mlpipe.data.datasets import dataset_name
    from mlpipe.data.roles import resolve_schema
    from mlpipe.errors import ConfigError, MlpipeError
    from mlpipe.quality.suites import batch_suite, find_suite, load_suite

    if args.model:
        from mlpipe import registry
        from mlpipe.io import tracking

        tracking.configure(config.tracking.uri, config.tracking.retry_seconds)
        served = registry.resolve(args.model, args.version)
        if served.suite is None:
            raise ConfigError(f"{args.model} v{served.version} has no stored suite")
        target = served.dataset.target
        checks = batch_suite(served.suite, target, target in frame.columns, served.dataset.pii)
        return checks, served.dataset, served
    schema: Any = None
    with contextlib.suppress(MlpipeError):  # validation needs no target; drift does
        schema = resolve_schema(frame, config.dataset)
    if args.suite:
        return load_suite(args.suite), schema, None
    name = dataset_name(config.dataset)
    path = find_suite(name, config.dataset.expectations)
    if path is None:
        raise ConfigError(
            f"no expectation suite for dataset '{name}' (expectations/{name}.json): pass "
            "--model NAME to use the suite a model was trained with, --suite PATH, or "
            "--set dataset.name=NAME"
        )
    return load_suite(path), schema, None


def cmd_validate(args: argparse.Namespace) -> int:
    """Run the gate on a dataset and print the summary; exit 1 when it fails."""
    from mlpipe.data.datasets import load_source
    from mlpipe.errors import ConfigError
    from mlpipe.io.tables import write_parquet, write_text
    from mlpipe.preflight import output_problems
    from mlpipe.quality.gate import (
        MostlyTally,
        apply_gate,
        failure_message,
        run_checks,
        with_mostly,
    )
    from mlpipe.reports.validation import render_html, render_markdown

    config = _load_config(args)
    problems = output_problems(
        {"--report": args.report, "--quarantine": args.quarantine},
        [config.dataset.source] if os.path.exists(config.dataset.source) else [],
    )
    if problems:
        raise ConfigError("; ".join(problems))
    frame = load_source(config.dataset)
    suite, schema, served = _resolve_validation_suite(args, config, frame)
    tally = MostlyTally(config.validation.batch_alpha) if served is not None else None
    report = run_checks(frame, suite, config.validation.engine)
    passing, quarantined, outcome = apply_gate(
        frame, report, config.validation.max_quarantine_rate, tally
    )
    if tally is not None:
        outcome = with_mostly(outcome, tally)
    print(render_markdown(report, outcome), end="")
    drifted = _validate_drift(config, frame if passing.empty else passing, schema, served)
    if args.report:
        write_text(render_html(report, outcome), args.report)
        print(f"HTML report: {args.report}")
    if args.quarantine and len(quarantined):
        write_parquet(quarantined, args.quarantine)
        print(f"quarantined rows: {args.quarantine}")
    from mlpipe.errors import DataDriftError, DataValidationError

    if not outcome.passed:
        raise DataValidationError(failure_message(report, outcome))
    if drifted and config.validation.drift.gate == "fail":
        raise DataDriftError(f"drift in {', '.join(drifted)}")
    return 0


def _validate_drift(config: Any, frame: Any, schema: Any, served: Any) -> list[str]:
    """Print drift against the champion (when there is one); return the drifted columns."""
    from mlpipe.data.datasets import model_name
    from mlpipe.io import tracking
    from mlpipe.registry import measure_drift

    if config.validation.drift.gate == "off":
        return []
    if schema is None:
        print("\ndrift not measured: no usable target column to resolve the schema")
        return []
    tracking.configure(config.tracking.uri, config.tracking.retry_seconds)
    name = (
        served.name
        if served is not None
        else model_name(config.dataset, config.tracking.model_name)
    )
    measured = measure_drift(frame, schema, name, config.validation.drift)
    if measured is None:
        print(f"\ndrift not measured: {name} has no champion with a reference profile")
        return []
    version, drift = measured
    print(f"\n(reference: {name} v{version})")
    print(drift.markdown(), end="")
    return drift.drifted


def cmd_expectations(args: argparse.Namespace) -> int:
    """``expectations init``: profile the data into a suite file."""
    import difflib
    from pathlib import Path

    from mlpipe.data.datasets import load_source
    from mlpipe.data.roles import resolve_schema
    from mlpipe.errors import ConfigError
    from mlpipe.io.tables import write_text
    from mlpipe.quality.suites import suite_from_frame, suite_path

    config = _load_config(args)
    frame = load_source(config.dataset)
    schema = resolve_schema(frame, config.dataset)
    suite = suite_from_frame(frame, schema, ordered=args.ordered)
    target = Path(args.output) if args.output else suite_path(schema.name)
    text = json.dumps(suite, indent=2, ensure_ascii=False) + "\n"
    if args.diff:
        old = target.read_text(encoding="utf-8") if target.exists() else ""
        diff = difflib.unified_diff(
            old.splitlines(keepends=True),
            text.splitlines(keepends=True),
            fromfile=f"{target} (current)",
            tofile=f"{target} (profiled)",
        )
        out = "".join(diff)
        print(out if out else f"{target}: no changes", end="" if out else "\n")
        return 0
    if target.exists() and not args.force:
        raise ConfigError(f"{target} exists: use --force to overwrite or --diff to compare")
    write_text(text, target)
    print(f"wrote {target}: {len(suite['expectations'])} expectations from {len(frame)} rows")
    return 0


MAX_CHUNK_ROWS = 100_000_000  # one chunk is held in memory: more is never a good idea


def cmd_predict(args: argparse.Namespace) -> int:
    """Run the batch prediction flow and print where the results are."""
    from mlpipe.errors import ConfigError
    from mlpipe.handoff import PredictRequest
    from mlpipe.io.sources import check_writable_url, is_remote
    from mlpipe.io.tables import check_readable, table_format
    from mlpipe.preflight import output_problems

    remote_in, remote_out = is_remote(args.input), is_remote(args.output)
    source = args.input if remote_in else str(check_readable(args.input, "input file"))
    table_format(args.output.split("?", 1)[0])
    if args.input == args.output or os.path.abspath(args.input) == os.path.abspath(args.output):
        raise ConfigError("--output must differ from --input")
    if remote_out:
        check_writable_url(args.output)
    else:
        problems = output_problems({"--output": args.output}, [] if remote_in else [args.input])
        if problems:
            raise ConfigError("; ".join(problems))
    if not 1 <= args.chunk_rows <= MAX_CHUNK_ROWS:
        raise ConfigError(f"--chunk-rows must be between 1 and {MAX_CHUNK_ROWS:,}")
    if args.encoding != "auto":
        import codecs

        try:
            codecs.lookup(args.encoding)
        except LookupError:
            raise ConfigError(f"unknown text encoding {args.encoding!r}") from None
    execution = _execution(args)
    from mlpipe.orchestration import run_batch_predict

    request = PredictRequest(
        model=args.model,
        input=source,
        output=args.output,
        version=args.version,
        chunk_rows=args.chunk_rows,
        encoding=args.encoding,
        execution=execution,
    )
    result = run_batch_predict(request)
    print(
        f"{result.rows_predicted} of {result.rows_in} rows predicted with {args.model} "
        f"v{result.model_version} -> {result.output}"
    )
    if result.quarantine:
        print(f"{result.rows_quarantined} rows quarantined -> {result.quarantine}")
    return 0


def _execution(args: argparse.Namespace) -> Any:
    """``--engine``, ``--address`` and ``--workers`` as a checked execution config."""
    from pydantic import ValidationError

    from mlpipe.config import ExecutionConfig
    from mlpipe.errors import ConfigError
    from mlpipe.preflight import check_execution

    if args.engine == "local" and args.address:
        raise ConfigError("--address needs --engine dask")
    try:
        execution = ExecutionConfig(
            engine=args.engine, address=args.address or None, workers=args.workers
        )
    except ValidationError as err:
        first = err.errors()[0]
        raise ConfigError(f"--{first['loc'][0]}: {first['msg']}") from None
    check_execution(execution, "--address")
    return execution


def cmd_models(args: argparse.Namespace) -> int:
    """Print registered models, their versions and (with --model) the alias history."""
    from mlpipe.errors import RegistryError
    from mlpipe.io import tracking

    tracking.configure()
    if args.model and not tracking.model_exists(args.model):
        raise RegistryError(f"model '{args.model}' is not registered")
    names = [args.model] if args.model else [m.name for m in tracking.list_models()]
    if not names:
        print("no registered models yet: run `mlpipe train`")
        return 0
    for name in names:
        versions = tracking.model_versions(name)
        by_version = tracking.aliases(name)
        print(f"{name}")
        print(
            f"  {'version':>7}  {'aliases':<10} {'metric':<10} {'value':>9}  "
            f"{'eligible':<8} decision"
        )
        for v in versions:
            names_ = ",".join(by_version.get(str(v.version), [])) or "-"
            metric = v.tags.get("mlpipe.primary_metric", "-").removeprefix("test_")
            value = v.tags.get("mlpipe.primary_value", "-")
            eligible = "yes" if tracking.eligibility(v)[0] else "no"
            decision = v.tags.get("mlpipe.decision", "-")
            reason = v.tags.get("mlpipe.decision.reason", "") if decision == "failed" else ""
            extra = f" ({reason[:80]})" if reason else ""
            print(
                f"  {v.version:>7}  {names_:<10} {metric:<10} {value:>9}  {eligible:<8} "
                f"{decision}{extra}"
            )
        if args.model:
            print("  alias history:")
            for move in tracking.alias_history(name):
                compared = move.get("compared_with")
                vs = f", compared with v{compared}" if compared else ""
                print(
                    f"    {move['time']}  {move['alias']}: v{move['from'] or '-'} -> "
                    f"v{move['to']}{vs}  ({move['reason']})"
                )
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    """Move `champion` back and record why; only to an eligible version unless --force."""
    from mlpipe.errors import ConfigError, RegistryError
    from mlpipe.io import tracking

    tracking.configure()
    if not tracking.model_exists(args.model):
        raise RegistryError(f"model '{args.model}' is not registered")
    if args.force and not (args.reason or "").strip():
        raise ConfigError("--force needs --reason: say why an ineligible version is forced")
    current = tracking.champion(args.model)
    if current is None:
        raise RegistryError(f"model '{args.model}' has no champion to roll back")
    target = args.to
    if target is None:
        previous = [
            m["from"]
            for m in reversed(tracking.alias_history(args.model))
            if m["to"] == current.version and m["from"]
        ]
        if not previous:
            raise RegistryError(f"model '{args.model}': no earlier champion; pass --to VERSION")
        target = previous[0]
    info = tracking.version_info(args.model, str(target))
    if str(info.version) == current.version:
        raise RegistryError(f"model '{args.model}': v{target} is already champion")
    eligible, why = tracking.eligibility(info)
    if not eligible and not args.force:
        raise RegistryError(
            f"{args.model} v{target} is not eligible for champion ({why[:200]}); pass --force "
            "--reason TEXT to override"
        )
    reason = f"rollback: {args.reason or 'manual rollback'}"
    if not eligible:
        reason += f" (forced: not eligible, {why[:200]})"
    move = tracking.move_alias(args.model, str(info.version), reason, expected=current.version)
    if move is None:
        raise RegistryError(f"the champion of {args.model} changed meanwhile: check and retry")
    print(f"{args.model}: champion v{move['from']} -> v{move['to']} ({move['reason']})")
    return 0


def cmd_retrain(args: argparse.Namespace) -> int:
    """Trigger the training deployment, or train in-process when no server is configured."""
    config = _load_config(args)
    if not os.environ.get("PREFECT_API_URL"):
        print("PREFECT_API_URL is not set: training in this process", file=sys.stderr)
        return cmd_train(args)
    from mlpipe.errors import ConfigError, MlpipeError
    from mlpipe.orchestration import TRAINING_DEPLOYMENT, trigger_training

    api = os.environ["PREFECT_API_URL"]
    try:
        run: Any = trigger_training(config, wait=args.wait, tags=["mlpipe:manual"])
    except MlpipeError:
        raise
    except Exception as err:
        raise ConfigError(
            f"cannot start {TRAINING_DEPLOYMENT} on {api} ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else ''}); is `mlpipe deploy` serving?"
        ) from None
    ui = os.environ.get("PREFECT_UI_URL") or api.removesuffix("/api")
    print(f"flow run {run.id}: {ui}/runs/flow-run/{run.id}")
    if not args.wait:
        return 0
    state = run.state
    message = f": {' '.join(state.message.split())}" if state and state.message else ""
    print(f"finished: {state.name if state else 'unknown'}{redact(message)}")
    return 0 if state and state.is_completed() else EXIT_FAILURE


def cmd_monitor(args: argparse.Namespace) -> int:
    """Run the monitoring flow on a batch and print its decision."""
    from mlpipe.errors import DataValidationError
    from mlpipe.io.sources import is_remote, remote_files
    from mlpipe.io.tables import check_readable, table_format

    config = _load_config(args)
    if is_remote(args.batch):
        remote_files(args.batch)  # a missing file or an unknown protocol: one line, now
        table_format(args.batch.split("?", 1)[0])
    else:
        check_readable(args.batch, "batch file")
    from mlpipe.orchestration import run_monitoring

    decision = run_monitoring(config, args.batch)
    run = f" (flow run {decision.flow_run_id})" if decision.flow_run_id else ""
    print(f"{decision.action}: {decision.reason}{run}")
    if decision.action == "gate failed":
        raise DataValidationError(f"batch {args.batch} failed the quality gate: {decision.reason}")
    return 0


def cmd_deploy(args: argparse.Namespace) -> int:
    """Serve the deployments until Ctrl-C."""
    from mlpipe.errors import ConfigError

    config = _load_config(args)
    if not os.environ.get("PREFECT_API_URL"):
        raise ConfigError(
            "mlpipe deploy needs a Prefect server: start one (`mlpipe server prefect` or "
            "`make servers`) and export PREFECT_API_URL=http://127.0.0.1:4200/api"
        )
    from mlpipe.orchestration import serve

    cron = config.schedule.cron or "none"
    print(
        f"serving mlpipe-training (cron {cron} {config.schedule.timezone}), "
        "mlpipe-batch-predict, mlpipe-monitoring; Ctrl-C to stop",
        flush=True,
    )
    try:
        serve(config)
    except (KeyboardInterrupt, Terminated):
        pass
    except SystemExit as done:  # Prefect's runner answers SIGTERM with a shutdown and exit(0)
        if done.code not in (0, None):
            raise
    print("stopped serving")
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    """Print the resolved config as YAML, or the JSON schema."""
    import yaml

    if args.schema:
        from mlpipe.config import Config

        print(json.dumps(Config.model_json_schema(), indent=2))
        return 0
    config = _load_config(args)
    resolved = ""
    if not args.no_data:  # first: a problem is the only thing printed, not the end of a page
        from mlpipe.io.runs import staging
        from mlpipe.preflight import check_paths

        check_paths(config)
        with staging(config.runs_dir) as folder:  # one pass, as a training run's load does it
            staged = _prepare(config, folder)
        resolved = _resolved(staged.dataset, staged.rows, staged.digest)
    print(yaml.safe_dump(config.safe_dump(), sort_keys=False) + resolved, end="")
    return 0


def _resolved(schema: Any, rows: int, digest: str) -> str:
    """What the data resolves to, as YAML comments (the output stays a usable config)."""

    def one_line(name: object) -> str:  # a line break in a name would end the comment
        return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in str(name))

    def names(columns: list[str]) -> str:
        shown = ", ".join(one_line(c) for c in columns[:12]) or "-"
        return f"{shown}, ... ({len(columns) - 12} more)" if len(columns) > 12 else shown

    lines = [
        f"# resolved on the data ({one_line(schema.name)}: {rows} rows, sha256 {digest[:12]}):",
        f"#   target: {one_line(schema.target)} ({schema.task})",
        f"#   numeric ({len(schema.numeric)}): {names(schema.numeric)}",
        f"#   categorical ({len(schema.categorical)}): {names(schema.categorical)}",
        f"#   ignored ({len(schema.ignore)}): {names(schema.ignore)}",
    ]
    if schema.identifiers:
        lines.append(f"#   identifiers (ignored): {names(schema.identifiers)}")
    if schema.leakage:
        lines.append(f"#   restate the target (ignored): {names(schema.leakage)}")
    if schema.image_shape:
        lines.append(f"#   image: {schema.image_shape[0]}x{schema.image_shape[1]} pixels")
    return "\n".join(lines) + "\n"


def cmd_datasets(_: argparse.Namespace) -> int:
    """List built-in datasets."""
    from mlpipe.data.datasets import BUILTINS

    for d in BUILTINS.values():
        print(f"{d.name:<14} target={d.target:<8} {d.task:<10} {d.description}")
        print(f"{'':<14} source: {d.origin}")
    return 0


def _run_server(cmd: list[str], env: dict[str, str]) -> int:
    from mlpipe.io.processes import die_with_parent

    proc = subprocess.Popen(cmd, env=env, preexec_fn=die_with_parent)
    try:
        return proc.wait()
    except (KeyboardInterrupt, Terminated):
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        return 0


def cmd_server(args: argparse.Namespace) -> int:
    """Run a Prefect or MLflow server in the foreground until Ctrl-C."""
    from mlpipe.io.tracking import probe_database
    from mlpipe.servers import (
        MLFLOW_BACKEND_ENV,
        PREFECT_DB_ENV,
        mlflow_command,
        no_secret_in_argv,
        prefect_command,
    )

    if args.which == "dask":
        return _run_dask(args.host, _port(args, 8786), args.workers)
    if args.which == "prefect":
        no_secret_in_argv(args.database_url, "--database-url", PREFECT_DB_ENV)
        port = _port(args, 4200)
        cmd, env = prefect_command(args.host, port, args.database_url)
        db = redact(env.get(PREFECT_DB_ENV, "SQLite in $PREFECT_HOME"))
        print(
            f"Prefect server on http://{args.host}:{port} (database: {db}); use "
            f"PREFECT_API_URL=http://{args.host}:{port}/api",
            flush=True,
        )
    else:
        no_secret_in_argv(args.database_url, "--database-url", MLFLOW_BACKEND_ENV)
        port = _port(args, 5000)
        cmd, env = mlflow_command(
            args.host, port, args.database_url, args.artifacts, args.allowed_hosts
        )
        backend = redact(env["MLFLOW_BACKEND_STORE_URI"])
        probe_database(env["MLFLOW_BACKEND_STORE_URI"], retry_seconds=60)
        print(
            f"MLflow server on http://{args.host}:{port} (backend: {backend}); use "
            f"MLFLOW_TRACKING_URI=http://{args.host}:{port}",
            flush=True,
        )
    return _run_server(cmd, env)


def cmd_servers(args: argparse.Namespace) -> int:
    """Start, stop or list the background Prefect and MLflow servers."""
    from mlpipe import background

    names = ["prefect", "mlflow"]
    if args.action == "stop":
        if not background.stop(names, args.state_dir):
            print(f"no server recorded in {args.state_dir} is running")
        return 0
    if args.action == "status":
        for name, url in background.status(names, args.state_dir).items():
            print(f"{name}: {url or 'not running'}")
        return 0
    if not args.timeout > 0:
        from mlpipe.errors import ConfigError

        raise ConfigError(f"--timeout must be a positive number of seconds, not {args.timeout}")
    ports = {"prefect": args.prefect_port, "mlflow": args.mlflow_port}
    wanted = [background.Server(name, args.host, ports[name]) for name in names]
    background.start(wanted, args.state_dir, args.timeout)
    urls = background.status(names, args.state_dir)
    print(
        f"export PREFECT_API_URL={urls['prefect']}/api MLFLOW_TRACKING_URI={urls['mlflow']}"
        "   # then: mlpipe train, mlpipe deploy, ...; stop with `make stop`"
    )
    return 0


def _port(args: argparse.Namespace, default: int) -> int:
    """``--port``, the default when absent, a free port for 0 (so the URL printed is real)."""
    from mlpipe.servers import free_port

    if args.port is None:
        return default
    return free_port(args.host) if args.port == 0 else int(args.port)


def _run_dask(host: str, port: int, workers: int) -> int:
    """A Dask scheduler and its workers until Ctrl-C or SIGTERM; both stop together."""
    from mlpipe.errors import ConfigError
    from mlpipe.io.processes import die_with_parent
    from mlpipe.servers import dask_commands, port_free

    if workers < 1:
        raise ConfigError(f"--workers must be at least 1, not {workers}")
    if not port_free(host, port):
        raise ConfigError(f"port {port} on {host} is taken: choose another with --port")
    scheduler_cmd, worker_cmd = dask_commands(host, port, workers)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    procs = [subprocess.Popen(scheduler_cmd, env=env, preexec_fn=die_with_parent)]
    try:
        if not _wait_port(host, port, procs[0], timeout=60):
            raise ConfigError(f"the Dask scheduler did not come up on {host}:{port}")
        procs.append(subprocess.Popen(worker_cmd, env=env, preexec_fn=die_with_parent))
        print(
            f"Dask scheduler on tcp://{host}:{port} with {workers} worker processes; use "
            f"--set execution.engine=dask --set execution.address=tcp://{host}:{port}",
            flush=True,
        )
        while all(p.poll() is None for p in procs):
            time.sleep(0.5)
        which = "scheduler" if procs[0].returncode is not None else "workers"
        code = procs[0].returncode if which == "scheduler" else procs[1].returncode
        print(f"mlpipe: the Dask {which} stopped (exit code {code})", file=sys.stderr)
        return code or 1
    except (KeyboardInterrupt, Terminated):
        return 0
    finally:
        for proc in reversed(procs):  # workers first: they leave the scheduler cleanly
            if proc.poll() is None:
                proc.terminate()
        for proc in reversed(procs):
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _wait_port(host: str, port: int, proc: subprocess.Popen[bytes], timeout: float) -> bool:
    """Whether ``host:port`` accepts connections before ``proc`` ends or ``timeout`` passes."""
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=1):
            return True
        time.sleep(0.2)
    return False


def cmd_health(args: argparse.Namespace) -> int:
    """Exit 0 when the URL answers 200 within a few seconds."""
    from mlpipe.errors import ConfigError, MlpipeError
    from mlpipe.servers import wait_healthy

    api = os.environ.get("PREFECT_API_URL")
    url = args.url or os.environ.get("MLPIPE_HEALTH_URL") or (f"{api}/health" if api else None)
    if not url:
        raise ConfigError("no URL: pass one, or set MLPIPE_HEALTH_URL or PREFECT_API_URL")
    if wait_healthy(url, timeout=5):
        return 0
    raise MlpipeError(f"{redact(url)} is not healthy")


def cmd_ui(args: argparse.Namespace) -> int:
    """Run ``mlflow server`` for the local (or configured) store, bound to 127.0.0.1."""
    from mlpipe.io.tracking import probe_database, resolve_uri
    from mlpipe.servers import mlflow_command, no_secret_in_argv

    no_secret_in_argv(args.backend_store_uri, "--backend-store-uri", "MLFLOW_TRACKING_URI")
    uri = args.backend_store_uri or resolve_uri()
    probe_database(uri, retry_seconds=60)
    cmd, env = mlflow_command(args.host, args.port, uri, "mlruns", None)
    print(
        f"MLflow UI for {redact(uri)} on http://{args.host}:{args.port} (Ctrl-C to stop)",
        flush=True,
    )
    return _run_server(cmd, env)


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve one registered model version over HTTP (MLflow's scoring server)."""
    from mlpipe.errors import ConfigError
    from mlpipe.io import tracking
    from mlpipe.registry import resolve
    from mlpipe.servers import bind_problem

    uri = tracking.configure()
    model = resolve(args.model, args.version)
    port = _port(args, 5001)
    problem = bind_problem(args.host, port)
    if problem:
        raise ConfigError(
            f"cannot serve on {args.host}:{port}: {problem} (choose --port; 0 picks a free one)"
        )
    cmd = [sys.executable, "-m", "mlflow", "models", "serve", "-m", model.uri]
    cmd += ["--env-manager", "local", "--host", args.host, "--port", str(port), "--workers", "1"]
    env = {
        **os.environ,
        # The server resolves models:/ through the registry, and starts `uvicorn` by name.
        "MLFLOW_TRACKING_URI": uri,
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
    }
    print(
        f"serving {model.name} v{model.version} on http://{args.host}:{port}/invocations "
        "(POST JSON rows; GET /ping for health; Ctrl-C to stop)",
        flush=True,
    )
    return _run_server(cmd, env)


def cmd_completion(args: argparse.Namespace) -> int:
    """Print a bash (or zsh, through bashcompinit) completion script built from the parser."""
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    cases = []
    for name, command in commands.items():
        words = []
        for action in command._actions:
            words += action.option_strings
            if not action.option_strings and action.choices:
                words += [str(choice) for choice in action.choices]
        cases.append(f"    {name}) words={shlex.quote(' '.join(words))} ;;")
    top = " ".join([*commands, *(o for a in parser._actions for o in a.option_strings)])
    script = "\n".join(
        [
            "# mlpipe completion (generated by `mlpipe completion`)",
            *(["autoload -U +X bashcompinit && bashcompinit"] if args.shell == "zsh" else []),
            "_mlpipe() {",
            '  local cur="${COMP_WORDS[COMP_CWORD]}" words=""',
            '  if [ "$COMP_CWORD" -eq 1 ]; then',
            f'    COMPREPLY=($(compgen -W "{top}" -- "$cur")); return',
            "  fi",
            '  case "${COMP_WORDS[1]}" in',
            *cases,
            "  esac",
            '  COMPREPLY=($(compgen -W "$words" -- "$cur"))',
            "}",
            "complete -o default -F _mlpipe mlpipe",
        ]
    )
    print(script)
    return 0


COMMANDS = {
    "train": cmd_train,
    "validate": cmd_validate,
    "expectations": cmd_expectations,
    "predict": cmd_predict,
    "models": cmd_models,
    "rollback": cmd_rollback,
    "reproduce": cmd_reproduce,
    "config": cmd_config,
    "datasets": cmd_datasets,
    "ui": cmd_ui,
    "serve": cmd_serve,
    "completion": cmd_completion,
    "server": cmd_server,
    "servers": cmd_servers,
    "health": cmd_health,
    "retrain": cmd_retrain,
    "deploy": cmd_deploy,
    "monitor": cmd_monitor,
}


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return redact(text) or type(err).__name__


def report_error(err: BaseException, verbose: bool) -> int:
    """Print one line for any failure (a traceback first with ``-v``); return the exit code."""
    from mlpipe.errors import MlpipeError, interruption

    err = interruption(err) or err  # a signal some library wrapped in its own error
    if isinstance(err, KeyboardInterrupt):
        print("mlpipe: error: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    terminated = isinstance(err, Terminated)
    if not terminated and "prefect" in sys.modules:
        from mlpipe.orchestration import is_termination

        terminated = is_termination(err)
    if terminated:
        print(
            "mlpipe: error: terminated (SIGTERM); a run it had started, if any, was closed "
            "as failed",
            file=sys.stderr,
        )
        return EXIT_TERMINATED
    if isinstance(err, BrokenPipeError):
        # Output piped into `head` and closed early: not an error of ours.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    if verbose:
        traceback.print_exception(err, file=sys.stderr)
    if isinstance(err, MlpipeError):
        line = _one_line(err)
    elif isinstance(err, OSError):
        where = f": {err.filename}" if err.filename else ""
        line = redact(f"{err.strerror or _one_line(err)}{where}")
    elif isinstance(err, MemoryError):
        line = "out of memory"
    else:
        hint = "" if verbose else " (run with -v for the traceback)"
        line = f"unexpected {type(err).__name__}: {_one_line(err)[:500]}{hint}"
    print(f"mlpipe: error: {line}", file=sys.stderr)
    return EXIT_FAILURE


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``mlpipe`` console script."""
    args = build_parser().parse_args(argv)
    configure_environment()
    configure_logging(args.verbose)
    handle_sigterm()
    if "prefect" in sys.modules or args.command in {
        "train",
        "retrain",
        "predict",
        "monitor",
        "deploy",
        "reproduce",
    }:
        from mlpipe.orchestration import quiet_tracebacks

        quiet_tracebacks(args.verbose)
    try:
        return COMMANDS[args.command](args)
    except SystemExit:
        raise
    except BaseException as err:  # every failure ends in one line (see report_error)
        return report_error(err, args.verbose)


if __name__ == "__main__":
    sys.exit(main())
