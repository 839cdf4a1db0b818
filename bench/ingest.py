"""Load-stage benchmark: the streaming ingest's memory stays flat as the table grows.

For each size, the synthetic table of ``bench/scale.py`` is generated (in blocks), then two
children are measured alone (wall, CPU, peak RSS):

- ``ingest``: what training's load stage does, ``mlpipe.preflight.prepare``: copy the table into
  partitions with the streaming digest and profile, resolve the schema (identifiers checked on
  every row), run the pre-flight;
- ``whole``: the floor of any whole-table approach, a bare ``pandas.read_parquet`` of the file.

It prints both, the peak RSS ratio ingest / whole, and each size's wall and RSS relative to the
smallest size (flat RSS and linear wall are the goal).

Usage:
    .venv/bin/python bench/ingest.py --rows 1000000 5000000 10000000
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scale import REPO, generate, measure

INGEST = """
import sys
from mlpipe import preflight
from mlpipe.config import load_config
config = load_config(None, ["dataset.source=" + sys.argv[1], "dataset.target=label",
                            "runs_dir=" + sys.argv[2]])
ingested, schema = preflight.prepare(config, sys.argv[2] + "/raw")
print(ingested.rows, len(schema.numeric), len(schema.categorical), file=sys.stderr)
"""
WHOLE = "import sys, pandas as pd; print(len(pd.read_parquet(sys.argv[1])), file=sys.stderr)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 5_000_000])
    default = Path(tempfile.gettempdir()) / "mlpipe-ingest"
    parser.add_argument("--workdir", type=Path, default=default)
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    rows_out = []
    for rows in args.rows:
        data = args.workdir / f"table-{rows}.parquet"
        if not data.exists():
            generate(data, rows)
        out = args.workdir / "runs"
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir()
        ingest = measure([sys.executable, "-c", INGEST, str(data), str(out)], env, args.workdir)
        whole = measure([sys.executable, "-c", WHOLE, str(data)], env, args.workdir)
        shutil.rmtree(out, ignore_errors=True)
        rows_out.append((rows, ingest, whole))
    first = rows_out[0][1]
    print(f"{'rows':>11} {'side':<7} {'wall s':>8} {'cpu s':>8} {'peak MiB':>9}  vs first size")
    for rows, ingest, whole in rows_out:
        for side, m in (("ingest", ingest), ("whole", whole)):
            scale = ""
            if side == "ingest":
                wall, rss = m["wall"] / first["wall"], m["rss_mib"] / first["rss_mib"]
                scale = f"wall {wall:.2f}x, RSS {rss:.2f}x"
            print(
                f"{rows:>11,} {side:<7} {m['wall']:>8.1f} {m['cpu']:>8.1f} "
                f"{m['rss_mib']:>9.0f}  {scale}"
            )
        print(f"{'':>11} peak RSS ingest / whole read: {ingest['rss_mib'] / whole['rss_mib']:.2f}x")


if __name__ == "__main__":
    main()
