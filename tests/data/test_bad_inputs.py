"""Bad-input corpus: every case ends in one clear error line and a non-zero exit, or is handled
explicitly; none creates a model version, moves `champion` or leaves a half-written file.

Cases run through the real CLI (``mlpipe.cli.main``) in-process. Those that need a registered
model run against a copy of a store trained once for this module (v1 champion, v2 registered
but not eligible).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from mlpipe.cli import main
from mlpipe.config import CleanConfig, DatasetSpec
from mlpipe.data.clean import clean_partition
from mlpipe.data.roles import resolve_schema
from mlpipe.io.tables import read_table
from mlpipe.quality.fastcheck import evaluate
from mlpipe.quality.gate import apply_gate
from mlpipe.quality.suites import suite_from_frame, without_unvalidated
from tests.helpers import make_mixed_frame, train_into, use_store

GOOD = make_mixed_frame(n=120)
MODEL = "mlpipe-penguins"
Build = Callable[[Path], None]


# File builders --------------------------------------------------------------------------------


def csv(frame: pd.DataFrame, name: str = "data.csv", **kw: object) -> Build:
    return lambda folder: frame.to_csv(folder / name, index=False, **kw)  # type: ignore[arg-type]


def raw(content: bytes, name: str = "data.csv") -> Build:
    return lambda folder: (folder / name).write_bytes(content) and None  # type: ignore[func-returns-value]


def text(content: str, name: str) -> Build:
    return lambda folder: (folder / name).write_text(content) and None  # type: ignore[func-returns-value]


def truncated_parquet(folder: Path) -> None:
    path = folder / "data.parquet"
    GOOD.to_parquet(path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def a_directory(folder: Path) -> None:
    (folder / "data.csv").mkdir()


def csv_in_a_directory(folder: Path) -> None:
    (folder / "parts").mkdir()
    GOOD.to_csv(folder / "parts" / "a.csv", index=False)


def repeated_header(folder: Path) -> None:
    body = GOOD.to_csv(index=False)
    header, *rows = body.splitlines()
    (folder / "data.csv").write_text("\n".join([header, *rows[:60], header, *rows[60:]]) + "\n")


def penguins_without(column: str, name: str = "batch.csv") -> Build:
    def build(folder: Path) -> None:
        from palmerpenguins import load_penguins

        load_penguins().drop(columns=[column]).to_csv(folder / name, index=False)

    return build


def penguins_with(name: str = "batch.csv", **changes: object) -> Build:
    def build(folder: Path) -> None:
        from palmerpenguins import load_penguins

        frame = load_penguins()
        for column, value in changes.items():
            frame[column] = value
        frame.to_csv(folder / name, index=False)

    return build


def bad_suite(folder: Path) -> None:
    (folder / "suite.json").write_text(
        '{"name": "s", "expectations": [{"type": "expect_the_moon", "kwargs": {}}]}'
    )


def many(*builders: Build) -> Build:
    def build(folder: Path) -> None:
        for b in builders:
            b(folder)

    return build


# The corpus -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One bad input: the command line, the expected one-line message, and what it needs."""

    id: str
    argv: list[str]
    message: str
    build: Build | None = None
    model: bool = False  # runs against the trained store
    code: int = 1
    not_created: list[str] = field(default_factory=list)


DATA = ["--data", "data.csv", "--target", "label"]
TRAIN = ["train", *DATA]
CASES = [
    # train: files
    Case("train_empty_file", TRAIN, "data file is empty", raw(b"")),
    Case("train_header_only", TRAIN, "header but no rows", raw(b"size,colour,label\n")),
    Case("train_missing_file", ["train", "--data", "nope.csv", "--target", "y"],
         "data file not found: nope.csv"),
    Case("train_directory", TRAIN, "data.csv: a directory or glob input holds Parquet files",
         a_directory),
    Case("train_directory_of_csv", ["train", "--data", "parts", "--target", "label"],
         "is not a Parquet file", csv_in_a_directory),
    Case("train_glob_matches_nothing", ["train", "--data", "parts/*.parquet", "--target", "y"],
         "no Parquet files in files match", a_directory),
    Case("train_unsupported_type", ["train", "--data", "data.xlsx", "--target", "label"],
         "unsupported file type '.xlsx'", raw(b"PK\x03\x04", "data.xlsx")),
    Case("train_truncated_parquet", ["train", "--data", "data.parquet", "--target", "label"],
         "as Parquet", truncated_parquet),
    Case("train_binary_garbage", TRAIN, "binary content", raw(bytes(range(256)) * 8)),
    Case("train_duplicate_columns", TRAIN, "duplicate column names",
         raw(b"a,a,label\n1,2,x\n3,4,y\n")),
    Case("train_repeated_header", TRAIN, "repeat the header", repeated_header),
    Case("train_repeated_header_in_capitals", TRAIN, "repeat the header",
         raw(b"size,label\n" + b"1.5,a\n2.5,b\n" * 10 + b"SIZE,LABEL\n" + b"3.5,a\n" * 5)),
    Case("train_comma_numbers_maybe_thousands", TRAIN, "thousands separator or a decimal comma",
         raw(b"size,label\n" + b'"1,500",a\n"2,250",b\n' * 15)),
    Case("train_ragged_rows", TRAIN, "cannot parse", raw(b"a,label\n1,x\n2,y,3,4\n")),
    Case("train_no_header_line", TRAIN, "no header line", raw(b"\n1,2\n")),
    # train: target and rows
    Case("train_missing_target", TRAIN, "target column 'label' not found",
         csv(GOOD.drop(columns=["label"]))),
    Case("train_no_target_given", ["train", "--data", "data.csv"], "no target column", csv(GOOD)),
    Case("train_all_null_target", TRAIN, "has no values (all missing)",
         csv(GOOD.assign(label=np.nan))),
    Case("train_single_class", TRAIN, "single class ('yes')", csv(GOOD.assign(label="yes"))),
    Case("train_single_row", TRAIN, "only 1 row;", csv(GOOD.head(1))),
    Case("train_ten_rows", TRAIN, "only 10 rows", csv(GOOD.head(10))),
    Case("train_mixed_target", TRAIN, "mixes numbers",
         csv(GOOD.assign(label=["high", "low", "3"] * 40))),
    Case("train_id_as_target", TRAIN, "too many classes",
         csv(GOOD.assign(label=[f"k{i}" for i in range(120)]))),
    Case("train_text_regression", [*TRAIN, "--task", "regression"], "holds no numbers",
         csv(GOOD)),
    Case("train_class_with_one_row", TRAIN, "have a single row",
         csv(GOOD.assign(label=["high", "low"] * 59 + ["low", "rare"]))),
    # train: config
    Case("train_unknown_key", [*TRAIN, "--set", "train.epochs=3"],
         "unknown config key 'train.epochs'", csv(GOOD)),
    Case("train_wrong_type", [*TRAIN, "--set", "train.max_epochs=many"],
         "config key 'train.max_epochs'", csv(GOOD)),
    Case("train_negative_seed", [*TRAIN, "--set", "seed=-1"], "config key 'seed'", csv(GOOD)),
    Case("train_zero_width_layer", [*TRAIN, "--set", "train.hidden_layers=[0]"],
         "config key 'train.hidden_layers.0'", csv(GOOD)),
    Case("train_cuda_without_gpu", [*TRAIN, "--set", "train.device=cuda"],
         "train.device=cuda", csv(GOOD)),
    Case("train_runs_dir_impossible", [*TRAIN, "--set", "runs_dir=data.csv/runs"],
         "runs_dir: cannot write to data.csv/runs: Not a directory", csv(GOOD)),
    Case("train_store_folder_impossible",
         [*TRAIN, "--set", "tracking.uri=sqlite:///data.csv/store/mlflow.db"],
         "tracking.uri (SQLite folder): cannot write", csv(GOOD)),
    Case("train_model_name_with_slash", [*TRAIN, "--set", "tracking.model_name=a/b"],
         "tracking.model_name", csv(GOOD)),
    Case("train_dataset_name_escapes", [*TRAIN, "--set", "dataset.name=../../etc/x"],
         "no path separators", csv(GOOD)),
    Case("train_regression_metric_for_classes", [*TRAIN, "--set", "promotion.metric=rmse"],
         "promotion.metric 'rmse' is not a binary metric", csv(GOOD)),
    Case("train_unknown_slice", [*TRAIN, "--set", "promotion.slices=[nope]"],
         "promotion.slices names 'nope'", csv(GOOD)),
    Case("train_unknown_min_metric", [*TRAIN, "--set", "promotion.min_metrics={rmse: 1}"],
         "promotion.min_metrics names rmse", csv(GOOD)),
    Case("train_missing_policy_for_absent_column", [*TRAIN, "--set", "clean.missing={nope: drop}"],
         "clean.missing names columns that are not features: nope", csv(GOOD)),
    Case("train_cnn_on_a_table", [*TRAIN, "--set", "train.architecture=cnn"],
         "cnn needs an image dataset", csv(GOOD)),
    Case("train_unknown_split_key", [*TRAIN, "--set", "split.key=nope"],
         "split.key 'nope' is not a column", csv(GOOD)),
    Case("train_password_in_config", [*TRAIN, "--set",
                                      "tracking.uri=postgresql://u:SENTINEL@db/mlflow"],
         "holds a password", csv(GOOD)),
    Case("train_numbers_near_the_float_limit", TRAIN,
         "feature values too large to learn from: size (up to 7e+301)",
         csv(GOOD.assign(size=GOOD["size"] * 1e300))),
    Case("train_password_with_a_slash", [*TRAIN, "--set",
                                         "tracking.uri=postgresql://u:SENTINEL/x@db/mlflow"],
         "holds a password", csv(GOOD)),
    Case("train_unknown_encoding", [*TRAIN, "--set", "dataset.encoding=klingon"],
         "unknown text encoding", csv(GOOD)),
    Case("train_unknown_dataset", ["train", "--dataset", "mnist"], "unknown dataset 'mnist'"),
    Case("train_config_missing", ["train", "--config", "nope.yaml"], "config file not found"),
    Case("train_config_not_yaml", ["train", "--config", "c.yaml"], "is not valid YAML",
         text("train: [unclosed\n", "c.yaml")),
    Case("train_config_not_a_mapping", ["train", "--config", "c.yaml"], "must hold a mapping",
         text("- a\n- b\n", "c.yaml")),
    Case("train_override_without_equals", ["train", "--set", "train.max_epochs"],
         "not of the form key=value"),
    Case("config_bad_value", ["config", "--set", "split.test_size=2"],
         "config key 'split.test_size'"),
    # validate
    Case("validate_without_a_suite", ["validate", "--data", "data.csv"],
         "no expectation suite for dataset 'data'", csv(GOOD)),
    Case("validate_missing_suite_file", ["validate", "--data", "data.csv", "--suite", "x.json"],
         "expectation suite not found", csv(GOOD)),
    Case("validate_suite_not_json", ["validate", "--data", "data.csv", "--suite", "s.json"],
         "is not valid JSON", many(csv(GOOD), text("{nope", "s.json"))),
    Case("validate_unknown_expectation", ["validate", "--data", "data.csv", "--suite",
                                          "suite.json"],
         "unknown expectation type 'expect_the_moon'", many(csv(GOOD), bad_suite)),
    Case("validate_report_unwritable", ["validate", "--data", "data.csv", "--report",
                                        "data.csv/report.html"],
         "--report data.csv/report.html: cannot write there: Not a directory", csv(GOOD)),
    Case("validate_report_is_the_input", ["validate", "--data", "data.csv", "--report",
                                          "data.csv"],
         "--report data.csv is the input: choose another file", csv(GOOD)),
    Case("validate_report_on_a_device", ["validate", "--data", "data.csv", "--report",
                                         "/dev/null"],
         "--report /dev/null: cannot write there: is not a regular file", csv(GOOD)),
    Case("validate_quarantine_is_a_folder", ["validate", "--data", "data.csv", "--quarantine",
                                             "sub"],
         "--quarantine sub: cannot write there: is a directory",
         many(csv(GOOD), lambda folder: (folder / "sub").mkdir())),
    Case("validate_unknown_model", ["validate", "--data", "data.csv", "--model", "nope"],
         "model 'nope' is not registered", csv(GOOD), model=True),
    Case("validate_dropped_column", ["validate", "--data", "batch.csv", "--model", MODEL],
         "data validation failed", penguins_without("island"), model=True),
    # predict
    Case("predict_unknown_model", ["predict", "--model", "nope", "--input", "batch.csv",
                                   "--output", "out.csv"],
         "model 'nope' is not registered", penguins_without("species"), model=True,
         not_created=["out.csv"]),
    Case("predict_unknown_version", ["predict", "--model", MODEL, "--version", "99",
                                     "--input", "batch.csv", "--output", "out.csv"],
         "has no version 99", penguins_without("species"), model=True, not_created=["out.csv"]),
    Case("predict_missing_input", ["predict", "--model", MODEL, "--input", "nope.csv",
                                   "--output", "out.csv"],
         "input file not found", model=True, not_created=["out.csv"]),
    Case("predict_empty_input", ["predict", "--model", MODEL, "--input", "batch.csv",
                                 "--output", "out.csv"],
         "input file is empty", raw(b"", "batch.csv"), model=True, not_created=["out.csv"]),
    Case("predict_unsupported_output", ["predict", "--model", MODEL, "--input", "batch.csv",
                                        "--output", "out.xlsx"],
         "unsupported file type '.xlsx'", penguins_without("species"), model=True,
         not_created=["out.xlsx"]),
    Case("predict_output_folder_impossible", ["predict", "--model", MODEL, "--input",
                                              "batch.csv", "--output", "batch.csv/out.csv"],
         "--output batch.csv/out.csv: cannot write there: Not a directory",
         penguins_without("species"), model=True),
    Case("predict_zero_chunk_rows", ["predict", "--model", MODEL, "--input", "batch.csv",
                                     "--output", "out.csv", "--chunk-rows", "0"],
         "--chunk-rows must be between 1 and 100,000,000", penguins_without("species"), model=True),
    Case("predict_output_is_input", ["predict", "--model", MODEL, "--input", "batch.csv",
                                     "--output", "batch.csv"],
         "--output must differ from --input", penguins_without("species"), model=True),
    Case("predict_unknown_encoding", ["predict", "--model", MODEL, "--input", "batch.csv",
                                      "--output", "out.csv", "--encoding", "klingon"],
         "unknown text encoding", penguins_without("species"), model=True,
         not_created=["out.csv"]),
    Case("predict_missing_column", ["predict", "--model", MODEL, "--input", "batch.csv",
                                    "--output", "out.csv"],
         "bill_length_mm", penguins_without("bill_length_mm"), model=True,
         not_created=["out.csv"]),
    Case("predict_every_row_quarantined", ["predict", "--model", MODEL, "--input", "batch.csv",
                                           "--output", "out.csv"],
         "quarantined", penguins_with(island="Atlantis"), model=True,
         not_created=["out.csv", "out.quarantine.parquet"]),
    # monitor
    Case("monitor_missing_batch", ["monitor", "--dataset", "penguins", "--batch", "nope.csv"],
         "batch file not found", model=True),
    Case("monitor_empty_batch", ["monitor", "--dataset", "penguins", "--batch", "batch.csv"],
         "batch file is empty", raw(b"", "batch.csv"), model=True),
    Case("monitor_failing_batch", ["monitor", "--dataset", "penguins", "--batch", "batch.csv"],
         "failed the quality gate", penguins_without("island"), model=True),
    # serve
    Case("serve_unknown_model", ["serve", "--model", "nope", "--port", "0"],
         "model 'nope' is not registered", model=True),
    Case("serve_unknown_version", ["serve", "--model", MODEL, "--version", "99", "--port", "0"],
         "has no version 99", model=True),
    # models and rollback
    Case("models_unknown", ["models", "--model", "nope"], "model 'nope' is not registered",
         model=True),
    Case("rollback_unknown_model", ["rollback", "--model", "nope"], "not registered", model=True),
    Case("rollback_unknown_version", ["rollback", "--model", MODEL, "--to", "99"],
         "has no version 99", model=True),
    Case("rollback_to_the_champion", ["rollback", "--model", MODEL, "--to", "1"],
         "v1 is already champion", model=True),
    Case("rollback_to_an_ineligible_version", ["rollback", "--model", MODEL, "--to", "2"],
         "v2 is not eligible for champion", model=True),
    Case("rollback_force_without_reason", ["rollback", "--model", MODEL, "--to", "2",
                                           "--force"],
         "--force needs --reason", model=True),
    Case("rollback_force_blank_reason", ["rollback", "--model", MODEL, "--to", "2",
                                         "--force", "--reason", "  "],
         "--force needs --reason", model=True),
    Case("rollback_without_history", ["rollback", "--model", MODEL], "no earlier champion",
         model=True),
    # servers
    Case("server_password_in_argv", ["server", "mlflow", "--database-url",
                                     "postgresql://u:SENTINEL@db/x"],
         "visible to every user"),
    Case("server_password_with_a_slash_in_argv", ["server", "mlflow", "--database-url",
                                                  "postgresql://u:SENTINEL/x@db/x"],
         "visible to every user"),
    Case("ui_password_in_argv", ["ui", "--backend-store-uri", "postgresql://u:SENTINEL@db/x"],
         "visible to every user"),
    Case("health_without_url", ["health"], "no URL"),
]  # fmt: skip


def registry_state(folder: Path) -> object:
    """Every model, version, tag and alias of the store in ``folder`` (``None``: no store)."""
    if not (folder / "mlflow.db").exists():
        return None
    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    state = []
    for model in client.search_registered_models():
        found = client.search_model_versions(f"name='{model.name}'")
        versions = sorted((v.version, tuple(sorted(v.tags.items()))) for v in found)
        state.append((model.name, dict(model.aliases), versions))
    return sorted(state, key=str)


@pytest.fixture(scope="module")
def trained_store(tmp_path_factory: pytest.TempPathFactory, prefect_harness: None) -> Path:
    """A store with penguins v1 (champion) and v2 (registered, not eligible)."""
    folder = tmp_path_factory.mktemp("store")
    good = {"max_epochs": 15, "hidden_layers": [16], "learning_rate": 0.01}
    bad = {"max_epochs": 1, "hidden_layers": [1], "learning_rate": 1e-6}
    train_into(folder, [{"dataset": {"source": "penguins"}, "train": t} for t in (good, bad)])
    return folder


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_gives_one_line_a_non_zero_exit_and_changes_nothing(
    case: Case, request: pytest.FixtureRequest, isolated_workdir: Path, capsys
):
    if case.model:
        use_store(request.getfixturevalue("trained_store"), isolated_workdir)
    if case.build is not None:
        case.build(isolated_workdir)
    before = registry_state(isolated_workdir)
    capsys.readouterr()  # only what the command itself prints is judged
    code = main(case.argv)
    mlflow.set_tracking_uri(f"sqlite:///{isolated_workdir / 'mlflow.db'}")
    err = capsys.readouterr().err.strip().splitlines()
    assert code == case.code
    errors = [line for line in err if line.startswith("mlpipe: error: ")]
    assert len(errors) == 1 and err[-1] == errors[0], err[-5:]
    assert case.message in errors[0], errors[0]
    assert not any("Traceback" in line for line in err), "a traceback only with -v"
    assert not any("Finished in state" in line for line in err), "no echo of Prefect's state"
    assert "SENTINEL" not in "\n".join(err), "no password in any message"
    assert registry_state(isolated_workdir) == before, "no version registered, champion unchanged"
    if not case.model:
        assert not (isolated_workdir / "runs").exists(), "nothing half-written"
    for name in case.not_created:
        assert not (isolated_workdir / name).exists(), f"{name} half-written"
    assert not list(isolated_workdir.glob(".*.partial")), "no partial files left"


def test_the_corpus_covers_every_command():
    commands = {case.argv[0] for case in CASES}
    assert {"train", "validate", "predict", "monitor", "config", "models", "rollback"} <= commands
    assert len(CASES) >= 60


def test_unknown_option_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", "--epochs", "3"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].endswith("unrecognized arguments: --epochs 3")


# Handled explicitly --------------------------------------------------------------------------


def test_wrong_delimiter_is_detected(tmp_path: Path):
    path = tmp_path / "semicolons.csv"
    GOOD.to_csv(path, index=False, sep=";")
    frame = read_table(path)
    assert list(frame.columns) == list(GOOD.columns), "read with ';' instead of one column"


def test_semicolons_with_decimal_commas_keep_their_numbers(tmp_path: Path):
    path = tmp_path / "european.csv"
    GOOD.to_csv(path, index=False, sep=";", decimal=",")
    frame = read_table(path)
    schema = resolve_schema(frame, DatasetSpec(source=str(path), target="label"))
    assert {"size", "weight"} <= set(schema.numeric), "decimal-comma columns are numbers"
    np.testing.assert_allclose(frame["size"], GOOD["size"])
    _, stats = clean_partition(frame, schema, CleanConfig())
    assert stats.drop_rate < 0.05, "no mass 'duplicates' from misread columns"


def test_latin_1_file_with_accents_is_read(tmp_path: Path):
    path = tmp_path / "data.csv"
    text_ = GOOD.head(60).to_csv(index=False).replace("north", "Zürich")
    path.write_bytes(text_.encode("latin-1"))
    assert "Zürich" in set(read_table(path)["region"])


def test_row_ids_in_a_file_sorted_by_the_target_are_not_features():
    frame = GOOD.sort_values("label").reset_index(drop=True).drop(columns=["id"])
    frame.insert(0, "row", np.arange(len(frame)))
    schema = resolve_schema(frame, DatasetSpec(source="x.csv", target="label"))
    assert "row" in schema.identifiers and "row" not in schema.features


def test_spaces_and_unicode_in_column_names(tmp_path: Path):
    path = tmp_path / "names.csv"
    GOOD.rename(columns={"size": " Größe (cm) ", "label": "Klasse ✓"}).to_csv(path, index=False)
    frame = read_table(path)
    assert "Größe (cm)" in frame.columns, "surrounding spaces are stripped, unicode kept"
    schema = resolve_schema(frame, DatasetSpec(source=str(path), target="Klasse ✓"))
    assert "Größe (cm)" in schema.numeric


def test_strings_and_inf_in_a_numeric_column_are_counted_and_made_missing():
    frame = GOOD.astype({"size": object})
    frame.loc[[0, 1], "size"] = ["n/a", "12,5"]
    frame.loc[2, "weight"] = np.inf
    frame.loc[3, "weight"] = -np.inf
    schema = resolve_schema(frame, DatasetSpec(source="x.csv", target="label"))
    assert "size" in schema.numeric, "two typos do not turn a number column into text"
    cleaned, stats = clean_partition(frame, schema, CleanConfig())
    assert stats.coerced_to_missing == {"size": 2, "weight": 2}
    assert cleaned["weight"].abs().max() < np.inf


def test_inf_and_extreme_outliers_are_quarantined_by_the_suite():
    schema = resolve_schema(GOOD, DatasetSpec(source="x.csv", target="label"))
    suite = suite_from_frame(GOOD, schema)
    bad = GOOD.copy()
    bad.loc[5, "size"] = 1e9
    bad.loc[6, "weight"] = -np.inf
    _, quarantined, outcome = apply_gate(bad, evaluate(bad, suite), 0.05)
    assert outcome.passed and outcome.rows_quarantined == 2
    assert set(quarantined["quarantine_reasons"]) == {
        "column_values_to_be_between:size", "column_values_to_be_between:weight",
    }  # fmt: skip


def test_shuffled_column_order_is_tolerated():
    schema = resolve_schema(GOOD, DatasetSpec(source="x.csv", target="label"))
    suite = suite_from_frame(GOOD, schema)
    shuffled = GOOD[list(reversed(GOOD.columns))]
    assert evaluate(shuffled, suite).success


def test_unexpected_extra_columns_are_not_used_as_features():
    schema = resolve_schema(GOOD, DatasetSpec(source="x.csv", target="label"))
    suite = suite_from_frame(GOOD, schema)
    extended = GOOD.assign(surprise=np.arange(len(GOOD)) % 3)
    new_schema = resolve_schema(extended, DatasetSpec(source="x.csv", target="label"))
    assert "surprise" in new_schema.features
    assert evaluate(extended, suite).success, "extra columns do not fail the gate..."
    kept = without_unvalidated(new_schema, suite)
    assert "surprise" not in kept.features and "surprise" in kept.ignore, "...nor reach training"


def test_column_identical_to_the_target_is_flagged_as_leakage():
    frame = GOOD.assign(
        label_copy=GOOD["label"], label_code=GOOD["label"].map({"high": 1, "low": 0})
    )
    schema = resolve_schema(frame, DatasetSpec(source="x.csv", target="label"))
    assert set(schema.leakage) == {"label_copy", "label_code"}
    assert not set(schema.leakage) & set(schema.features)


def test_near_restatements_of_the_target_are_flagged_and_strong_features_are_not():
    rng = np.random.default_rng(3)
    label = GOOD["label"]
    flipped = rng.random(len(GOOD)) < 0.01
    code = label.map({"high": 1, "low": 0}).where(~flipped, label.map({"high": 0, "low": 1}))
    unknown = pd.Series(np.where(rng.random(len(GOOD)) < 0.02, "unknown", label))
    finer = label + "_" + pd.Series(rng.choice(["web", "app", "store"], len(GOOD)))
    honest = label.where(rng.random(len(GOOD)) < 0.8, "high")  # strong, not a restatement
    frame = GOOD.assign(code=code, status=unknown, source=finer, hint=honest)
    spec = DatasetSpec(source="x.csv", target="label")
    schema = resolve_schema(frame, spec)
    assert set(schema.leakage) == {"code", "status", "source"}
    assert "hint" in schema.features
    kept = resolve_schema(frame, spec.model_copy(update={"categorical": ["status"]}))
    assert "status" in kept.features, "a column named by the user is kept"


def test_a_binned_copy_of_a_regression_target_is_flagged():
    frame = GOOD.assign(y=np.linspace(0, 100, len(GOOD)))
    frame = frame.assign(y_binned=(frame["y"] / 5).round() * 5).drop(columns="label")
    schema = resolve_schema(frame, DatasetSpec(source="x.csv", target="y"))
    assert schema.leakage == ["y_binned"]


def test_dates_in_a_number_column():
    frame = GOOD.assign(when=pd.date_range("2024-01-01", periods=len(GOOD)).astype(str))
    schema = resolve_schema(frame, DatasetSpec(source="x.csv", target="label"))
    assert "when" in schema.ignore, "a column of dates is not a number nor a category"
    mostly_numbers = GOOD.astype({"weight": object})
    mostly_numbers.loc[0, "weight"] = "2024-01-03"
    schema = resolve_schema(mostly_numbers, DatasetSpec(source="x.csv", target="label"))
    _, stats = clean_partition(mostly_numbers, schema, CleanConfig())
    assert "weight" in schema.numeric and stats.coerced_to_missing.get("weight") == 1


@pytest.mark.integration
@pytest.mark.parametrize("command", [["models"], ["rollback", "--model", "m"]])
def test_a_missing_tracking_database_is_one_line_without_mlflow_retries(
    command: list[str], isolated_workdir: Path, monkeypatch, capsys
):
    uri = "postgresql://postgres:SENTINEL-pw@127.0.0.1:5432/mlpipe_no_such_db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    assert main(command) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err[:5]  # MLflow's ten retry warnings never start
    assert 'database "mlpipe_no_such_db" does not exist' in err[0], err[0]
    assert "postgres:***@" in err[0] and "SENTINEL" not in err[0]
