"""`mlpipe reproduce`: what a registered version was trained from, and whether a rerun matches.

A version's training run records its resolved config (``config/resolved.json``), the git commit
and dirty flag of the code, the full-content digest of its data, the accepted monitoring batches
of its window (``data/window.json``) and its metrics. A reproduction trains again from those,
under its own experiment and model name, so the registry and ``champion`` of the original model
are never touched.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlpipe.config import Config, build_config
from mlpipe.errors import ConfigError, RegistryError
from mlpipe.io import tracking

EXPERIMENT = "mlpipe-reproduce"


@dataclass(frozen=True)
class Recorded:
    """What a version's training run recorded."""

    model: str
    version: str
    run_id: str
    config: dict[str, Any]
    tags: dict[str, str]
    metrics: dict[str, float]
    window: tuple[Path, ...] | None  # the accepted batches it read, if it trained on a window


def recorded(model: str, version: str) -> Recorded:
    """Read what ``model`` ``version``'s training run recorded.

    Raises:
        RegistryError: No such model or version, or a version without a recorded config.
    """
    if not tracking.model_exists(model):
        raise RegistryError(f"model '{model}' is not registered")
    info = tracking.version_info(model, version)
    run_id = str(info.run_id)
    config = tracking.load_dict(run_id, "config/resolved.json")
    if not isinstance(config, dict):
        raise RegistryError(
            f"{model} v{version} has no recorded config (config/resolved.json): "
            "it was not trained by mlpipe"
        )
    tags = tracking.run_tags(run_id)
    window = None
    if "mlpipe.window.batches" in tags:
        found = tracking.load_dict(run_id, "data/window.json") or {}
        window = tuple(Path(p) for p in found.get("batches", []))
    return Recorded(
        model=model,
        version=str(info.version),
        run_id=run_id,
        config=config,
        tags=tags,
        metrics=tracking.run_metrics(run_id),
        window=window,
    )


def rerun_config(found: Recorded, data: str | None) -> Config:
    """The recorded config, tracked under :data:`EXPERIMENT` as ``<model>-reproduce``.

    The tracking URI is the current one (the recorded value is redacted), and ``data``
    replaces the recorded source when the data has moved.
    """
    base = found.model.removesuffix("-reproduce")  # reproducing a reproduction: same model
    overrides = [f"tracking.experiment={EXPERIMENT}", f"tracking.model_name={base}-reproduce"]
    config = dict(found.config)
    config["tracking"] = {**config.get("tracking", {}), "uri": None}
    if data:
        config["dataset"] = {**config.get("dataset", {}), "source": data}
    return build_config(config, overrides)


def code_problem(found: Recorded, current: dict[str, str]) -> str | None:
    """Why the checkout's code is not the recorded code, if it is not."""
    then, now = found.tags.get("mlpipe.git.commit", "unknown"), current["mlpipe.git.commit"]
    if then == "unknown":
        return "the version recorded no git commit"
    if then != now:
        return f"it was trained at commit {then[:12]}, this checkout is at {now[:12]}"
    if current["mlpipe.git.dirty"] == "true":
        return "this checkout has uncommitted changes"
    if found.tags.get("mlpipe.git.dirty") == "true":
        return "it was trained from a tree with uncommitted changes"
    return None


def data_problem(found: Recorded, digest: str) -> str | None:
    """Why the data read now is not the recorded data, if it is not."""
    then = found.tags.get("mlpipe.dataset.digest")
    if then is None:
        return "the version recorded no data digest"
    if then != digest:
        return f"the data's digest is {digest[:12]}, the version's was {then[:12]}"
    return None


def missing_source(config: Config) -> str | None:
    """Why the recorded data cannot be found from here, if it cannot."""
    from mlpipe.data.datasets import is_builtin
    from mlpipe.io.sources import is_database, is_remote
    from mlpipe.io.tables import is_dataset

    source = config.dataset.source
    if is_builtin(source) or Path(source).exists() or is_dataset(source):
        return None
    if is_database(source) or is_remote(source):
        return None  # read when training starts; the digest check says whether it changed
    where = "" if Path(source).is_absolute() else f" (a relative path, read from {Path.cwd()})"
    return f"the recorded data {source} is not found{where}"


def missing_batches(found: Recorded) -> list[Path]:
    """Accepted batches of the recorded window that are gone."""
    return [p for p in found.window or () if not p.exists()]


def compare(found: Recorded, now: dict[str, float]) -> list[tuple[str, float | None, float]]:
    """Each metric of the rerun with the recorded value (``None``: not recorded)."""
    # Versions logged before metrics were grouped recorded the flat names.
    return [
        (name, found.metrics.get(tracking.metric_key(name), found.metrics.get(name)), value)
        for name, value in sorted(now.items())
    ]


def refuse_or_warn(problems: list[str], force: bool, warn: Any) -> None:
    """Refuse on any problem, or with ``force`` only warn.

    Raises:
        ConfigError: There is a problem and ``force`` is false.
    """
    if not problems:
        return
    text = "; ".join(problems)
    if not force:
        raise ConfigError(f"cannot reproduce exactly: {text} (--force runs it anyway)")
    warn(f"reproducing anyway (--force): {text}")
