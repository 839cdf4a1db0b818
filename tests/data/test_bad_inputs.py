"""Bad-input corpus: every case ends in one clear error line and a non-zero exit, or is
handled explicitly; none creates a model version or moves `champion`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flows.cli import main
from tasks.clean import clean_partition
from tasks.core.config import CleanConfig, DatasetSpec
from tasks.core.datasets import read_table
from tasks.core.fastcheck import evaluate
from tasks.core.suites import suite_from_frame
from tasks.load import resolve_schema
from tasks.validate import apply_gate, without_unvalidated
from tests.helpers import make_mixed_frame

GOOD = make_mixed_frame(n=120)


def write_csv(frame: pd.DataFrame) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        path = folder / "data.csv"
        frame.to_csv(path, index=False)
        return path

    return build


def write_bytes(name: str, content: bytes) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        path = folder / name
        path.write_bytes(content)
        return path

    return build


def truncated_parquet(folder: Path) -> Path:
    path = folder / "data.parquet"
    GOOD.to_parquet(path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return path


def latin1_body(folder: Path) -> Path:
    path = folder / "data.csv"
    text = GOOD.head(30).to_csv(index=False).replace("north", "Zürich")
    path.write_bytes(text.encode("latin-1"))
    return path


def a_directory(folder: Path) -> Path:
    (folder / "data.csv").mkdir()
    return folder / "data.csv"


# (case id, file builder, extra CLI args, message expected in the one error line)
FAILING = [
    ("empty_file", write_bytes("data.csv", b""), [], "data file is empty"),
    ("header_only", write_bytes("data.csv", b"size,colour,label\n"), [], "header but no rows"),
    ("missing_target", write_csv(GOOD.drop(columns=["label"])), [], "target column 'label'"),
    ("all_null_target", write_csv(GOOD.assign(label=np.nan)), [], "has no values (all missing)"),
    ("single_class_target", write_csv(GOOD.assign(label="yes")), [], "single class ('yes')"),
    ("duplicate_column_names", write_bytes("data.csv", b"a,a,label\n1,2,x\n3,4,y\n"), [],
     "duplicate column names"),
    ("truncated_parquet", truncated_parquet, [], "as Parquet"),
    ("non_utf8_csv", latin1_body, [], "is not UTF-8 text"),
    ("binary_garbage", write_bytes("data.csv", bytes(range(256)) * 8), [], "not UTF-8"),
    ("single_row", write_csv(GOOD.head(1)), [], "only 1 row;"),
    ("unsupported_type", write_bytes("data.xlsx", b"PK\x03\x04"), [], "unsupported data file type"),
    ("path_is_a_directory", a_directory, [], "is not a file"),
    ("unknown_config_key", write_csv(GOOD), ["--set", "train.epochs=3"],
     "unknown config key 'train.epochs'"),
    ("wrong_config_type", write_csv(GOOD), ["--set", "train.max_epochs=many"],
     "config key 'train.max_epochs'"),
]  # fmt: skip


@pytest.mark.parametrize(("build", "extra", "message"), [c[1:] for c in FAILING],
                         ids=[c[0] for c in FAILING])  # fmt: skip
def test_failing_input_gives_one_line_and_non_zero_exit(
    tmp_path: Path, capsys, build, extra, message
):
    path = build(tmp_path)
    code = main(["train", "--data", str(path), "--target", "label", *extra])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert len(err) == 1 and err[0].startswith("mlpipe: error: "), err
    assert message in err[0], err[0]
    assert not (tmp_path / "mlflow.db").exists(), "no run, no model version, champion untouched"
    assert not (tmp_path / "runs").exists(), "nothing half-written"


def test_unknown_option_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", "--epochs", "3"])
    assert exc.value.code == 2
    assert (
        capsys.readouterr()
        .err.strip()
        .splitlines()[-1]
        .endswith("unrecognized arguments: --epochs 3")
    )


# Handled explicitly --------------------------------------------------------------------------


def test_wrong_delimiter_is_detected(tmp_path: Path):
    path = tmp_path / "semicolons.csv"
    GOOD.to_csv(path, index=False, sep=";")
    frame = read_table(path)
    assert list(frame.columns) == list(GOOD.columns), "read with ';' instead of one column"


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


def test_dates_in_a_number_column():
    frame = GOOD.assign(when=pd.date_range("2024-01-01", periods=len(GOOD)).astype(str))
    schema = resolve_schema(frame, DatasetSpec(source="x.csv", target="label"))
    assert "when" in schema.ignore, "a column of dates is not a number nor a category"
    mostly_numbers = GOOD.astype({"weight": object})
    mostly_numbers.loc[0, "weight"] = "2024-01-03"
    schema = resolve_schema(mostly_numbers, DatasetSpec(source="x.csv", target="label"))
    _, stats = clean_partition(mostly_numbers, schema, CleanConfig())
    assert "weight" in schema.numeric and stats.coerced_to_missing.get("weight") == 1
