from pathlib import Path

import pytest
from pydantic import ValidationError

from mlpipe.config import Config, apply_overrides, build_config, flatten, load_config
from mlpipe.errors import ConfigError


def test_defaults_are_valid_and_frozen():
    config = build_config()
    assert config.train.hidden_layers == [256, 128], "founding MLP is 256-128"
    assert config.dataset.source == "digits"
    with pytest.raises(ValidationError, match="frozen"):
        config.seed = 3  # type: ignore[misc]


def test_unknown_key_is_an_error_naming_the_key():
    with pytest.raises(ConfigError, match=r"unknown config key 'train\.hiden_layers'"):
        build_config({"train": {"hiden_layers": [8]}})


def test_wrong_type_names_the_key():
    with pytest.raises(ConfigError, match=r"config key 'train\.max_epochs'"):
        build_config(overrides=["train.max_epochs=lots"])


def test_overrides_parse_yaml_values_and_do_not_mutate_input():
    data = {"train": {"max_epochs": 5}}
    merged = apply_overrides(data, ["train.hidden_layers=[32, 16]", "seed=7", "dataset.source=x"])
    assert merged["train"] == {"max_epochs": 5, "hidden_layers": [32, 16]}
    assert merged["seed"] == 7 and merged["dataset"]["source"] == "x"
    assert data == {"train": {"max_epochs": 5}}, "input mapping must not change"


def test_override_without_equals_is_rejected():
    with pytest.raises(ConfigError, match="key=value"):
        build_config(overrides=["train.max_epochs"])


def test_split_fractions_must_leave_training_rows():
    with pytest.raises(ConfigError, match="split"):
        build_config({"split": {"test_size": 0.5, "val_size": 0.45}})


def test_load_config_from_yaml_with_overrides(tmp_path: Path):
    path = tmp_path / "c.yaml"
    path.write_text("seed: 3\ntrain:\n  max_epochs: 4\n")
    config = load_config(path, ["train.max_epochs=9"])
    assert (config.seed, config.train.max_epochs) == (3, 9)


def test_load_config_missing_file(tmp_path: Path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")


def test_load_config_rejects_non_mapping(tmp_path: Path):
    path = tmp_path / "c.yaml"
    path.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(path)


def test_repository_configs_are_valid():
    repo = Path(__file__).resolve().parents[2]
    for path in sorted((repo / "configs").glob("*.yaml")):
        assert isinstance(load_config(path), Config), path


def test_flatten_gives_dotted_string_params():
    flat = flatten(build_config())
    assert flat["train.hidden_layers"] == "[256, 128]"
    assert flat["dataset.target"] == "null"
    assert flat["clean.missing"] == "{}"
    assert all(isinstance(v, str) for v in flat.values())


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("seed=-1", "config key 'seed'"),
        ("seed=99999999999", "config key 'seed'"),
        ("train.hidden_layers=[0]", "config key 'train.hidden_layers.0'"),
        ("train.hidden_layers=[64, -2]", "config key 'train.hidden_layers.1'"),
        ("dataset.name=../../etc/passwd", "no path separators"),
        ("tracking.model_name=a/b", "tracking.model_name"),
        ("dataset.encoding=klingon", "unknown text encoding"),
        ("clean.max_drop_rate=2", "config key 'clean.max_drop_rate'"),
        ("split.stratify=true", "unknown config key 'split.stratify'"),
        ("train.batch_size=0", r"'train.batch_size': must be a positive integer or 'auto', not 0$"),
        ("train.batch_size=big", r"'train.batch_size': must be .* or 'auto', not 'big'$"),
    ],
)
def test_invalid_values_name_the_key(override: str, message: str):
    with pytest.raises(ConfigError, match=message):
        build_config(overrides=[override])


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://u:SENTINEL@db/mlflow",
        "postgresql://:SENTINEL@db/mlflow",
        "postgresql://u:SENTINEL@h1:5432,h2:5433/mlflow",
        "postgresql://db/mlflow?password=SENTINEL",
    ],
)
def test_a_password_in_the_config_is_refused(url: str):
    with pytest.raises(ConfigError, match="holds a password") as err:
        build_config(overrides=[f"tracking.uri={url}"])
    assert "SENTINEL" not in str(err.value)


def test_safe_dump_and_flatten_redact():
    config = build_config(overrides=["tracking.uri=postgresql://u@db/mlflow"])
    assert config.safe_dump()["tracking"]["uri"] == "postgresql://u@db/mlflow"
    assert flatten(config)["tracking.uri"] == "postgresql://u@db/mlflow"
