import json
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from mlpipe.cli import main
from tests.helpers import make_mixed_frame


def test_help_is_instant_and_imports_nothing_heavy():
    code = (
        "import sys, mlpipe.cli\n"
        "heavy = [m for m in ('torch', 'prefect', 'mlflow', 'great_expectations', 'sklearn')"
        " if m in sys.modules]\n"
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "mlpipe", "--help"], capture_output=True, text=True
    )
    assert done.returncode == 0 and "train" in done.stdout
    assert time.perf_counter() - started < 10, "generous bound: only catches eager heavy imports"


def test_datasets_lists_builtins(capsys):
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    for name in ("digits", "penguins", "breast_cancer", "diabetes"):
        assert name in out


def test_config_prints_resolved_values(capsys):
    assert main(["config", "--dataset", "penguins", "--set", "train.max_epochs=7"]) == 0
    out = capsys.readouterr().out
    assert "source: penguins" in out and "max_epochs: 7" in out
    # The data's resolved roles follow, as comments: the output is still a loadable config.
    assert "#   target: species (multiclass)" in out, out
    assert "#   numeric (4): bill_length_mm" in out
    assert yaml.safe_load(out)["train"]["max_epochs"] == 7
    assert main(["config", "--dataset", "penguins", "--no-data"]) == 0
    assert "# resolved" not in capsys.readouterr().out


def test_config_reports_the_roles_of_a_file_and_its_problems(tmp_path, capsys):
    path = tmp_path / "sales.csv"
    frame = pd.DataFrame({"order_id": range(300), "amount": [i % 17 * 1.5 for i in range(300)],
                          "region": ["n", "s", "e"] * 100, "churned": [0, 1] * 150})  # fmt: skip
    frame.to_csv(path, index=False)
    assert main(["config", "--data", str(path), "--target", "churned"]) == 0
    out = capsys.readouterr().out
    assert "#   identifiers (ignored): order_id" in out, out
    assert "#   categorical (1): region" in out
    # A line break in a column name stays inside its comment: the output is still YAML.
    frame.rename(columns={"amount": "bad\nname: [x]"}).to_csv(path, index=False)
    assert main(["config", "--data", str(path), "--target", "churned"]) == 0
    out = capsys.readouterr().out
    assert "bad\\nname: [x]" in out
    assert yaml.safe_load(out)["dataset"]["target"] == "churned"
    # A config that cannot work with this data fails like training would, in one line.
    assert main(["config", "--data", str(path), "--target", "nope"]) == 1
    assert capsys.readouterr().err.startswith("mlpipe: error: ")


def test_unknown_option_exits_non_zero(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", "--epochs", "3"])
    assert exc.value.code == 2
    assert "unrecognized arguments: --epochs" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--data", "missing.csv", "--target", "y"], "data file not found: missing.csv"),
        (["--dataset", "mnist"], "unknown dataset 'mnist'"),
        (["--data", "{csv}", "--target", "nope"], "target column 'nope' not found"),
        (["--data", "{csv}"], "no target column"),
        (["--data", "{empty}", "--target", "y"], "data file is empty"),
        (["--set", "train.epochs=3"], "unknown config key 'train.epochs'"),
        (["--config", "nope.yaml"], "config file not found"),
    ],
)
def test_bad_input_one_line_non_zero_and_no_registry(tmp_path: Path, capsys, args, message):
    csv, empty = tmp_path / "ok.csv", tmp_path / "empty.csv"
    make_mixed_frame(50).to_csv(csv, index=False)
    empty.write_text("")
    argv = ["train", *[a.format(csv=csv, empty=empty) for a in args]]
    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert len(err) == 1 and err[0].startswith("mlpipe: error: ") and message in err[0], err
    assert not (tmp_path / "mlflow.db").exists(), "bad input must not touch the registry"
    assert not (tmp_path / "runs").exists(), "nothing half-written is left behind"


def test_expectations_init_writes_then_refuses_then_diffs(tmp_path: Path, capsys):
    out = tmp_path / "expectations" / "penguins.json"
    assert main(["expectations", "init", "--dataset", "penguins"]) == 0
    suite = json.loads(out.read_text())
    assert suite["name"] == "penguins" and len(suite["expectations"]) >= 10
    assert {e["meta"]["severity"] for e in suite["expectations"]} == {"critical", "row"}
    before = out.read_text()
    capsys.readouterr()

    assert main(["expectations", "init", "--dataset", "penguins"]) == 1
    assert "exists: use --force" in capsys.readouterr().err
    assert main(["expectations", "init", "--dataset", "penguins", "--diff", "--ordered"]) == 0
    diff = capsys.readouterr().out
    assert '+      "type": "expect_table_columns_to_match_ordered_list",' in diff
    assert out.read_text() == before, "--diff writes nothing"
    assert main(["expectations", "init", "--dataset", "penguins", "--force", "--ordered"]) == 0
    assert "ordered_list" in out.read_text()


def test_validate_passes_and_fails_with_exit_codes(tmp_path: Path, capsys):
    from palmerpenguins import load_penguins

    assert main(["validate", "--dataset", "penguins", "--report", "r.html"]) == 0
    assert "Validation PASSED" in capsys.readouterr().out
    assert "<style>" in (tmp_path / "r.html").read_text()

    bad = load_penguins()
    bad.loc[:40, "island"] = "Atlantis"
    bad.to_csv(tmp_path / "penguins.csv", index=False)
    code = main(["validate", "--data", "penguins.csv", "--quarantine", "q.parquet"])
    captured = capsys.readouterr()
    assert code == 1 and "Validation FAILED" in captured.out
    assert captured.err.startswith("mlpipe: error: data validation failed: 41 of 344 rows")
    assert len(pd.read_parquet(tmp_path / "q.parquet")) == 41


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        ("mlpipe tr", "train"),
        ("mlpipe predict --eng", "--engine"),
        ("mlpipe server d", "dask"),
        ("mlpipe serve --po", "--port"),
    ],
)
def test_bash_completion_completes_commands_options_and_choices(words: str, expected: str):
    script = subprocess.run(
        [sys.executable, "-m", "mlpipe", "completion", "bash"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    probe = (
        f"{script}\nCOMP_WORDS=({words}); COMP_CWORD=$((${{#COMP_WORDS[@]}}-1)); _mlpipe; "
        'echo "${COMPREPLY[*]}"'
    )
    done = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.split() == [expected]


def test_zsh_completion_goes_through_bashcompinit(capsys):
    assert main(["completion", "zsh"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[1] == "autoload -U +X bashcompinit && bashcompinit"
    assert out.rstrip().endswith("complete -o default -F _mlpipe mlpipe")


def test_a_checkout_keeps_its_own_prefect_home_unless_told_otherwise(tmp_path: Path):
    import os

    code = (
        "import os\nfrom mlpipe.runtime import configure_environment\n"
        "configure_environment()\nprint(os.environ.get('PREFECT_HOME', '-'))"
    )
    base = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    repo = Path(__file__).resolve().parents[2]
    for extra, expected in [
        ({}, str(repo / ".mlpipe" / "prefect")),
        ({"PREFECT_HOME": str(tmp_path)}, str(tmp_path)),
        ({"PREFECT_API_URL": "http://127.0.0.1:4200/api"}, "-"),
    ]:
        done = subprocess.run([sys.executable, "-c", code], env={**base, **extra},
                              capture_output=True, text=True, check=True)  # fmt: skip
        assert done.stdout.strip() == expected, extra


def test_every_command_has_a_description_and_examples_that_parse():
    import argparse
    import shlex

    from mlpipe.cli import EXAMPLES, build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, command in commands.choices.items():
        text = command.format_help()
        assert command.description, name
        assert "example" in text, name
    for name, lines in EXAMPLES.items():
        assert name in commands.choices
        for line in lines:
            argv = shlex.split(line, comments=True)
            assert argv[0] == "mlpipe" and argv[1] == name, line
            parser.parse_args(argv[1:])  # exits (fails the test) on a wrong option
