"""What every benchmark task shares: seeds, timed training, the machine header, result tables.

A task trains and scores, then hands its rows to :func:`write_results`, which merges them into
``<out>/<stem>.csv`` (rows of earlier runs are kept unless measured again: same key columns) and
rewrites ``<out>/<stem>.md`` from the merged CSV, under a header that names the settings and the
machine (:func:`machine_header`).
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

HERE = Path(__file__).parent
#: Where the committed result tables live (``--out`` default).
RESULTS = HERE / "results"


def parse_seeds(text: str) -> list[int]:
    """``"0,1,2"`` -> ``[0, 1, 2]``."""
    return [int(s) for s in text.split(",") if s.strip()]


def seeds(args) -> Iterator[int]:
    """Each seed of ``--seeds``, with scvi-tools' global seed set to it first."""
    import scvi

    for seed in args.seeds:
        scvi.settings.seed = seed
        yield seed


def quiet() -> None:
    """Silence the warnings of the libraries a benchmark drives."""
    warnings.filterwarnings("ignore")


def train(model, args, **train_kwargs) -> dict[str, float]:
    """Train ``model`` for ``args.epochs`` at ``args.batch_size`` without early stopping, timed.

    ``train_kwargs`` override or add ``model.train`` arguments (``max_epochs`` too). Returns the
    wall time of the training (``train time (s)``) and the training cells per second.
    """
    kwargs = {
        "max_epochs": args.epochs,
        "batch_size": args.batch_size,
        "early_stopping": False,
        "enable_progress_bar": False,
        **train_kwargs,
    }
    start = time.perf_counter()
    model.train(**kwargs)
    seconds = time.perf_counter() - start
    return {
        "train time (s)": seconds,
        "training cells/s": kwargs["max_epochs"] * len(model.train_indices) / seconds,
    }


def extra_runs(text: str) -> dict[str, dict]:
    """``--extra-runs`` JSON: ``{"name": {"model": {...}, "train": {...}}}``, checked."""
    runs = json.loads(text) if text else {}
    for name, spec in runs.items():
        unknown = set(spec) - {"model", "train"}
        if unknown:
            raise SystemExit(f"--extra-runs {name!r}: keys {sorted(unknown)}; use model, train")
    return runs


def device() -> str:
    """The GPU torch would train on, or the processor."""
    import torch

    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return platform.processor() or platform.machine()


def machine_header() -> str:
    """Versions (python, torch, scvi-tools, mosaicvi), cores, torch threads and device."""
    import scvi
    import torch

    import mosaicvi

    return (
        f"python {platform.python_version()}, torch {torch.__version__}, scvi-tools "
        f"{scvi.__version__}, mosaicvi {mosaicvi.__version__}; {os.cpu_count()} cores visible, "
        f"{torch.get_num_threads()} torch threads, device {device()}, 1-minute load average "
        f"{os.getloadavg()[0]:.1f} at the end (above the thread count: the CPU was shared)"
    )


def settings_header(args, what: str) -> str:
    """One line: what the table measures, the common settings and the command that wrote it."""
    command = " ".join(["python", "benchmarks/run.py", *sys.argv[1:]])
    return (
        f"{what}; {args.epochs} epochs, batch size {args.batch_size}, seeds "
        f"{','.join(map(str, args.seeds))}. Written by `{command}`."
    )


def merge(table: pd.DataFrame, csv: Path, key: list[str], fresh: bool = False) -> pd.DataFrame:
    """``table`` merged into the rows of ``csv`` (unless ``fresh``): new rows replace same keys.

    Key columns missing from the older CSV (e.g. ``seed`` before it was recorded) are filled
    with the new table's first value, so that a re-measured row replaces its older version.
    """
    if csv.exists() and not fresh:
        earlier = pd.read_csv(csv)
        for column in key:
            if column not in earlier:
                earlier[column] = table[column].iloc[0]
        table = pd.concat([earlier, table], ignore_index=True)
        table = table.drop_duplicates(key, keep="last")
    return table.reset_index(drop=True)


def write_results(
    rows: list[dict] | pd.DataFrame,
    args,
    stem: str,
    key: list[str],
    header: str,
    transpose: bool = False,
    notes: str = "",
    columns: dict[str, str] | None = None,
    sort: list[str] | None = None,
) -> pd.DataFrame:
    """Merge ``rows`` into ``<out>/<stem><tag>.csv`` and rewrite ``.md``; return the merged table.

    The markdown is ``header``, the :func:`machine_header`, the table (only ``columns``, renamed,
    when given; one column per row of results when ``transpose``; numbers to 3 decimals) and
    ``notes``. ``sort``: columns to order the rows by (default: as measured).
    """
    args.out.mkdir(parents=True, exist_ok=True)
    csv = args.out / f"{stem}{args.tag}.csv"
    table = merge(pd.DataFrame(rows), csv, key, getattr(args, "fresh", False))
    if sort:
        table = table.sort_values(sort, kind="stable").reset_index(drop=True)
    table.to_csv(csv, index=False)
    shown = table.set_index(key)
    if columns:
        shown = shown[[c for c in columns if c in shown]].rename(columns=columns)
    if transpose:
        shown = shown.map(lambda v: f"{v:.3f}" if isinstance(v, float) else v).T
    else:  # key columns as columns, whole numbers shown as such
        shown = shown.reset_index().astype(dict.fromkeys(key[1:], str)).set_index(key[0])
    markdown = "\n\n".join(
        part
        for part in (
            header,
            f"Machine: {machine_header()}.",
            shown.to_markdown(floatfmt=".3f"),
            notes.strip(),
        )
        if part
    )
    csv.with_suffix(".md").write_text(markdown + "\n")
    print(markdown, flush=True)
    return table


def append_seed_summary(table: pd.DataFrame, by: str, markdown) -> pd.DataFrame:
    """Append the mean and SD over seeds of ``table``'s numeric columns, per ``by``, to ``markdown``.

    ``table`` has a ``seed`` column (as :func:`write_results` returns it); ``markdown`` is the
    path of the ``.md`` file :func:`write_results` wrote. Returns the summary.
    """
    summary = table.drop(columns="seed").groupby(by, sort=False).agg(["mean", "std"]).round(3)
    summary.columns = [f"{c} ({s})" for c, s in summary.columns]
    markdown.write_text(
        markdown.read_text() + "\nMean and SD over the seeds:\n\n" + summary.to_markdown() + "\n"
    )
    return summary


def scib_columns(scores: pd.DataFrame, name: str) -> dict[str, float]:
    """The scib total, bio conservation and batch correction of embedding ``name``."""
    return {
        "scib total": scores.loc[name, "Total"],
        "scib bio": scores.loc[name, "Bio conservation"],
        "scib batch": scores.loc[name, "Batch correction"],
    }
