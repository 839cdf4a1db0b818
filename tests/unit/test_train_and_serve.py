import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from mlpipe.config import FeatureConfig, TrainConfig
from mlpipe.data.features import fit_features
from mlpipe.errors import ConfigError, TrainingError
from mlpipe.learn.train import Rows, encode_target, fit, fit_baseline, fit_network
from mlpipe.serving.nets import MLP, SmallCNN, build_network
from mlpipe.serving.predictor import IntegrityError, Predictor, sha256_file, verify
from mlpipe.serving.schema import Schema


def blobs(n: int = 240, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.normal(size=(n, 4)).astype(np.float32) + y[:, None].astype(np.float32) * 2
    return x, y.astype(np.int64)


def spec(task: str = "multiclass", n_out: int = 3) -> dict:
    return {
        "architecture": "mlp", "task": task, "n_inputs": 4, "n_outputs": n_out,
        "hidden_layers": [16, 8], "dropout": 0.0, "image_shape": None,
    }  # fmt: skip


def test_seeding_turns_on_deterministic_kernels_without_importing_the_compiler():
    # A fresh interpreter: this one may have imported torch's compiler already.
    code = (
        "import sys, torch\n"
        "from mlpipe.learn.train import seed_everything\n"
        "seed_everything(0)\n"
        "print(torch.are_deterministic_algorithms_enabled(),"
        " torch.is_deterministic_algorithms_warn_only_enabled(),"
        " 'torch._inductor.config' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "True", "False"]


def test_same_seed_same_weights_and_history():
    x, y = blobs()
    cfg = TrainConfig(max_epochs=5, batch_size=32)
    net_a, hist_a, _ = fit_network(
        Rows.of(x[:200], y[:200]), Rows.of(x[200:], y[200:]), spec(), cfg, seed=3
    )
    net_b, hist_b, _ = fit_network(
        Rows.of(x[:200], y[:200]), Rows.of(x[200:], y[200:]), spec(), cfg, seed=3
    )
    assert hist_a == hist_b, "same seed must give the same learning curve"
    for a, b in zip(net_a.state_dict().values(), net_b.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_learns_separable_classes_and_reports_each_epoch():
    x, y = blobs()
    seen: list[dict] = []
    _net, history, best = fit_network(
        Rows.of(x[:200], y[:200]),
        Rows.of(x[200:], y[200:]),
        spec(),
        TrainConfig(max_epochs=40, learning_rate=0.01),
        0,
        seen.append,
    )
    assert seen == history and 1 <= best <= len(history)
    assert history[-1]["val_accuracy"] > 0.85
    assert {"train_loss", "val_loss", "train_accuracy", "val_accuracy"} <= set(history[0])


def test_early_stopping_stops_before_max_epochs():
    x, y = blobs()
    # Random labels: validation loss cannot keep improving, so patience ends training.
    y_noise = np.random.default_rng(1).integers(0, 3, len(y))
    cfg = TrainConfig(max_epochs=200, patience=3, learning_rate=0.01)
    _, history, best = fit_network(
        Rows.of(x[:200], y_noise[:200]), Rows.of(x[200:], y_noise[200:]), spec(), cfg, 0
    )
    assert len(history) < 200 and len(history) - best == 3


def test_regression_network_fits_a_line():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 4)).astype(np.float32)
    y = (x @ np.array([1.0, -2.0, 0.5, 0.0], dtype=np.float32)).astype(np.float32)
    _net, history, _ = fit_network(
        Rows.of(x[:250], y[:250]),
        Rows.of(x[250:], y[250:]),
        spec("regression", 1),
        TrainConfig(max_epochs=60),
        0,
    )
    assert history[-1]["val_loss"] < 0.1 * float(np.var(y))
    assert "val_accuracy" not in history[-1]


def test_cnn_shapes_with_extra_features():
    net = build_network(
        {"architecture": "cnn", "n_inputs": 66, "n_outputs": 10, "dropout": 0.0,
         "image_shape": [8, 8], "hidden_layers": []}
    )  # fmt: skip
    assert isinstance(net, SmallCNN)
    assert net(torch.zeros(5, 66)).shape == (5, 10)
    assert isinstance(build_network(spec()), MLP)


@pytest.mark.parametrize("kind", ["linear", "hgb"])
def test_baselines_fit(kind: str):
    x, y = blobs()
    model = fit_baseline(x, y, classify=True, kind=kind, seed=0)
    assert (model.predict(x) == y).mean() > 0.85


def test_encode_target_uses_class_order():
    assert encode_target(pd.Series(["b", "a", "b"]), ["a", "b"]).tolist() == [1, 0, 1]


def test_predictor_roundtrip_raw_rows_with_nan(tmp_path: Path):
    schema = Schema(name="t", target="y", task="binary", numeric=["n"], categorical=["c"])
    train = pd.DataFrame({"n": [1.0, 2.0, 3.0, 4.0], "c": ["u", "v", "u", "v"]})
    pre = fit_features(train, schema, FeatureConfig())[0]
    net_spec = {**spec("binary", 2), "n_inputs": 3}
    meta = {"schema": schema.model_dump(mode="json"), "classes": ["no", "yes"], "network": net_spec}
    predictor = Predictor(pre, build_network(net_spec), meta)
    predictor.save(tmp_path)
    loaded = Predictor.load(tmp_path)
    rows = pd.DataFrame({"n": ["2.5", None, np.inf], "c": [None, "v", "new"], "extra": [1, 2, 3]})
    out = loaded.predict(rows)
    assert list(out.columns) == ["prediction", "proba_no", "proba_yes"]
    assert out["prediction"].isin(["no", "yes"]).all()
    np.testing.assert_allclose(out[["proba_no", "proba_yes"]].sum(axis=1), 1.0)
    pd.testing.assert_frame_equal(out, predictor.predict(rows))


def test_a_diverging_network_stops_with_one_clear_error():
    x, y = blobs()
    cfg = TrainConfig(max_epochs=20, learning_rate=1e12)
    with pytest.raises(
        TrainingError, match=r"diverged at epoch \d+ .*learning_rate \(now 1e\+12\)"
    ):
        fit_network(Rows.of(x[:200], y[:200]), Rows.of(x[200:], y[200:]), spec(), cfg, 0)


def test_cuda_without_a_gpu_is_a_config_error():
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ConfigError, match=r"train\.device=cuda"):
        fit_network(
            Rows.of(*blobs(40)[:2]), Rows.of(*blobs(20)[:2]), spec(), TrainConfig(device="cuda"), 0
        )


def test_fit_returns_the_served_predictor_and_both_comparison_candidates():
    rng = np.random.default_rng(0)
    n = 300
    frame = pd.DataFrame({"n": rng.normal(size=n), "c": rng.choice(["u", "v"], n)})
    frame["y"] = np.where(frame["n"] + (frame["c"] == "u") > 0.5, "yes", "no")
    schema = Schema(name="t", target="y", task="binary", numeric=["n"], categorical=["c"])
    fitted = fit(
        frame[:200],
        frame[200:250],
        schema,
        ["no", "yes"],
        TrainConfig(max_epochs=30, hidden_layers=[16]),
        FeatureConfig(),
        seed=0,
    )
    outputs = fitted.outputs(frame[250:])
    assert set(outputs) == {"network", "baseline", "trivial"}
    truth = encode_target(frame[250:]["y"], ["no", "yes"])
    assert (outputs["network"].argmax(1) == truth).mean() > 0.8, "the network learned"
    prior = (frame[:200]["y"] == "yes").mean()
    np.testing.assert_allclose(outputs["trivial"][:, 1], prior), "trivial = training prior"
    assert list(fitted.predictor.predict(frame[250:252]).columns) == [
        "prediction",
        "proba_no",
        "proba_yes",
    ]


def test_a_modified_model_file_is_refused_before_unpickling(tmp_path: Path):
    path = tmp_path / "preprocessor.joblib"
    path.write_bytes(b"original")
    recorded = {"preprocessor": sha256_file(path)}
    verify({"preprocessor": str(path)}, recorded)
    path.write_bytes(b"tampered")
    with pytest.raises(IntegrityError, match="modified since registration"):
        verify({"preprocessor": str(path)}, recorded)
    with pytest.raises(IntegrityError, match="no SHA-256 recorded"):
        verify({"network": str(path)}, recorded)


@pytest.mark.parametrize(
    ("rows", "expected"),
    [(1_200, 64), (255_999, 64), (256_000, 128), (1_000_000, 256), (2_048_000, 1024), (5e7, 1024)],
)
def test_auto_batch_size_grows_with_the_training_rows(rows: int, expected: int):
    from mlpipe.learn.train import batch_size

    assert batch_size(TrainConfig(), int(rows)) == expected
    assert batch_size(TrainConfig(batch_size=32), int(rows)) == 32


def small_task() -> tuple[pd.DataFrame, Schema]:
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"n": rng.normal(size=300), "c": rng.choice(["u", "v"], 300)})
    frame["y"] = np.where(frame["n"] + (frame["c"] == "u") > 0.5, "yes", "no")
    return frame, Schema(name="t", target="y", task="binary", numeric=["n"], categorical=["c"])


@pytest.mark.parametrize("threads", [1, 64], ids=["beside the network", "after it"])
def test_the_baseline_is_the_same_whether_it_trains_beside_the_network_or_not(threads: int):
    frame, schema = small_task()
    cfg = TrainConfig(max_epochs=3, hidden_layers=[8], threads=threads)
    before = torch.get_num_threads()
    try:
        fitted = fit(frame[:200], frame[200:250], schema, ["no", "yes"], cfg, FeatureConfig(), 0)
    finally:
        torch.set_num_threads(before)
    x = fitted.predictor.features(frame[:200])
    alone = fit_baseline(x, encode_target(frame[:200]["y"], ["no", "yes"]), True, "linear", 0)
    np.testing.assert_allclose(fitted.baseline.coef_, alone.coef_, rtol=1e-6)


def test_a_failing_baseline_fails_fit_with_its_own_error(monkeypatch: pytest.MonkeyPatch):
    import mlpipe.learn.train as train

    def broken(*_: object) -> None:
        raise ValueError("baseline exploded")

    monkeypatch.setattr(train, "fit_baseline", broken)
    frame, schema = small_task()
    cfg = TrainConfig(max_epochs=2, hidden_layers=[8], threads=1)
    with pytest.raises(ValueError, match="baseline exploded"):
        fit(frame[:200], frame[200:250], schema, ["no", "yes"], cfg, FeatureConfig(), 0)


def _write_features(folder, x, y, parts):
    from mlpipe.io.tables import PartitionWriter
    from mlpipe.learn.train import TARGET_COLUMN

    with PartitionWriter(folder) as writer:
        for rows in np.array_split(np.arange(len(y)), parts):
            out = pd.DataFrame(x[rows], columns=[f"f{i}" for i in range(x.shape[1])])
            out[TARGET_COLUMN] = y[rows]
            writer.write(out)
        return writer.commit()


def test_rows_on_disk_train_the_network_the_frames_train(tmp_path):
    from mlpipe.data.features import fit_features
    from mlpipe.learn.train import encode_target, fit_rows
    from mlpipe.serving.predictor import transform

    frame, schema = small_task()
    cfg = TrainConfig(max_epochs=3, hidden_layers=[8])
    classes = ["no", "yes"]
    pre, x_train = fit_features(frame[:200], schema, FeatureConfig())
    x_val = transform(pre, schema, frame[200:250])
    y_train = encode_target(frame[:200][schema.target], classes)
    y_val = encode_target(frame[200:250][schema.target], classes)
    direct = fit(frame[:200], frame[200:250], schema, classes, cfg, FeatureConfig(), 0)
    train = Rows.on_disk(_write_features(tmp_path / "t", x_train, y_train, 1))
    val = Rows.on_disk(_write_features(tmp_path / "v", x_val, y_val, 1))
    handed = fit_rows(train, val, pre, schema, classes, cfg, 0)
    assert direct.history == handed.history
    assert handed.baseline_rows == 200

    # Several partitions: visited in a seeded order, each shuffled; the same rows are learned.
    train = Rows.on_disk(_write_features(tmp_path / "t3", x_train, y_train, 3))
    val = Rows.on_disk(_write_features(tmp_path / "v2", x_val, y_val, 2))
    assert (len(train), train.rows, len(val), val.rows) == (3, 200, 2, 50)
    first = fit_rows(train, val, pre, schema, classes, cfg, 0)
    again = fit_rows(train, val, pre, schema, classes, cfg, 0)
    assert first.history == again.history, "seeded: the same order every time"
    assert first.history[-1]["train_loss"] < first.history[0]["train_loss"] * 1.05
    assert first.trivial.class_prior_ == pytest.approx(direct.trivial.class_prior_)


def test_the_baseline_trains_on_a_bounded_uniform_sample(tmp_path, monkeypatch):
    from mlpipe.learn import train as train_module

    monkeypatch.setattr(train_module, "BASELINE_MAX_ROWS", 90)
    x = np.random.default_rng(0).normal(size=(300, 3)).astype(np.float32)
    y = np.arange(300) % 2
    rows = Rows.on_disk(_write_features(tmp_path / "t", x, y, 3))
    x_head, y_head = rows.head(90)
    assert len(y_head) == 90 and x_head.shape == (90, 3)
    # Even steps through each partition: a partition sorted by the target still gives both.
    sorted_y = np.r_[np.zeros(150), np.ones(150)].astype(np.int64)
    rows = Rows.on_disk(_write_features(tmp_path / "s", x, sorted_y, 1))
    assert rows.head(90)[1].mean() == pytest.approx(0.5, abs=0.02)
    tiny = Rows.on_disk(_write_features(tmp_path / "u", x[:9], y[:9], 3))
    assert len(tiny.head(4)[1]) == 4, "never more than asked"
