"""Training throughput and peak memory of MosaicVI and MULTIVI, from 10^3 to 10^6 cells.

Times training of MosaicVI and scvi-tools MULTIVI on the same synthetic RNA+ATAC mosaic
(:func:`mosaicvi.data.synthetic_mosaic`) and batch size, for each size in ``--cells``; each
(size, model, seed) runs in its own subprocess (``_speed_child.py``), so peak host memory is per
model. Cells/s = cells / mean wall time of the epochs after one warm-up epoch (training only:
``train_size=1.0``, no validation, no early stopping). ``mosaicvi-3mod`` adds MosaicVI on the
three-modality mosaic (RNA, ATAC, simulated ADT); ``mosaicvi-exact`` MosaicVI with
``closed_feature_fraction=1``. ``--epochs`` counts the timed epochs after the warm-up.

Writes ``speed_<device>.md``, ``.csv`` (rows of earlier runs on the same device are kept unless
re-measured, or dropped with ``--fresh``) and ``speed_<device>.png`` (epoch time vs cells,
log-log).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
from _runner import HERE, merge, settings_header, write_results

EPOCHS = 2
#: Runner model name -> (child model, modalities, label in the table, model keyword arguments).
MODELS = {
    "mosaicvi": ("mosaicvi", "rna,atac", "MosaicVI", {}),
    "multivi": ("multivi", "rna,atac", "MULTIVI", {}),
    "mosaicvi-3mod": ("mosaicvi", "rna,atac,adt", "MosaicVI", {}),
    "mosaicvi-exact": (
        "mosaicvi",
        "rna,atac",
        "MosaicVI, closed_feature_fraction=1",
        {"closed_feature_fraction": 1.0},
    ),
}
KEY = ["method", "modalities", "cells", "seed"]
COLUMNS = {
    "cells_per_s": "training cells/s",
    "epoch_s": "s/epoch",
    "timed_epochs": "timed epochs",
    "warmup_steps": "warm-up steps (0: one epoch)",
    "partial_steps": "steps (partial epoch)",
    "sparse_input_mb": "sparse input (MB)",
    "peak_rss_mb": "peak RSS (MB)",
    "rss_to_input": "peak RSS / input",
    "rss_above_imports_to_input": "(peak RSS - imports) / input",
    "rss_after_imports_mb": "RSS after imports (MB)",
    "rss_after_build_mb": "peak RSS after data (MB)",
    "peak_gpu_mb": "peak GPU (MB)",
    "data_source": "data",
    "build_s": "data build or read (s)",
    "setup_s": "setup (s)",
    "load_avg_start": "load avg before",
    "load_avg_end": "load avg after",
}


def run_child(model: str, cells: int, seed: int, args: argparse.Namespace) -> dict | None:
    """Run one measurement in a subprocess; ``None`` (and a message) if it failed or timed out."""
    child, modalities, label, model_kwargs = MODELS[model]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "record.json"
        command = [
            sys.executable,
            str(HERE / "_speed_child.py"),
            f"--model={child}",
            f"--cells={cells}",
            f"--modalities={modalities}",
            f"--epochs={args.epochs}",
            f"--batch-size={args.batch_size}",
            f"--accelerator={args.accelerator}",
            f"--seed={seed}",
            f"--max-steps={args.max_steps}",
            f"--warmup-steps={args.warmup_steps}",
            f"--json={out}",
            f"--model-kwargs={json.dumps(model_kwargs)}",
        ]
        if args.data_dir is not None:
            command.append(f"--data={cached_mosaic(cells, modalities, seed, args)}")
        load = os.getloadavg()[0]
        print(f"[{label} {modalities} {cells} cells] {' '.join(command[1:])}", flush=True)
        try:
            subprocess.run(command, check=True, timeout=args.timeout, cwd=HERE)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as error:
            print(f"  failed: {error}", flush=True)
            return None
        record = json.loads(out.read_text())
    record.update(method=label, seed=seed, load_avg_start=load, batch_size=args.batch_size)
    record["rss_to_input"] = record["peak_rss_mb"] / record["sparse_input_mb"]
    above = record["peak_rss_mb"] - record["rss_after_imports_mb"]
    record["rss_above_imports_to_input"] = above / record["sparse_input_mb"]
    print(f"  {record['cells_per_s']:.0f} cells/s, peak RSS {record['peak_rss_mb']:.0f} MB")
    return record


def cached_mosaic(cells: int, modalities: str, seed: int, args: argparse.Namespace) -> Path:
    """The synthetic mosaic of this size in ``args.data_dir`` (built and written once)."""
    path = args.data_dir / f"synthetic_{modalities.replace(',', '-')}_{cells}_seed{seed}.h5mu"
    if not path.exists():
        print(f"  building {path.name}", flush=True)
        script = (
            "import sys, mosaicvi; mosaicvi.data.synthetic_mosaic("
            f"{cells}, modalities={modalities.split(',')!r}, seed={seed}"
            ").write(sys.argv[1])"
        )
        args.data_dir.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial.h5mu")
        subprocess.run([sys.executable, "-c", script, str(partial)], check=True)
        partial.rename(path)
    return path


def device_slug(device: str) -> str:
    """File-name form of a device name (``cpu``, ``nvidia-h200``, ...)."""
    return re.sub(r"[^a-z0-9]+", "-", device.lower()).strip("-")


def write_speed_results(records: list[dict], args: argparse.Namespace) -> None:
    """Merge with earlier rows of the same device; write the table, CSV and plot."""
    slug = device_slug(records[0]["device"])
    header = settings_header(
        args,
        f"Training throughput on `{records[0]['device']}`, synthetic SNARE-seq mosaic "
        "(`mosaicvi.data.synthetic_mosaic`), one warm-up epoch (or `--warmup-steps`) then the "
        "timed epochs; torch threads per child in the CSV",
    )
    merged = merge(
        pd.DataFrame(records), args.out / f"speed_{slug}{args.tag}.csv", KEY, args.fresh
    )
    notes = "\n".join(
        line for line in (_ratio_lines(merged), _memory_growth_lines(merged)) if line
    )
    table = write_results(
        records, args, f"speed_{slug}", KEY, header, notes=notes, columns=COLUMNS, sort=KEY[1:3]
    )
    plot(table, args.out / f"speed_{slug}{args.tag}.png")


def _ratio_lines(table: pd.DataFrame) -> str:
    """MosaicVI / MULTIVI throughput at every size both ran (RNA+ATAC)."""
    pair = table[table["modalities"] == "rna,atac"].pivot_table(
        index="cells", columns="method", values="cells_per_s"
    )
    if not {"MosaicVI", "MULTIVI"} <= set(pair.columns):
        return ""
    ratio = (pair["MosaicVI"] / pair["MULTIVI"]).dropna()
    return "\n".join(
        f"- {cells:,} cells: MosaicVI / MULTIVI cells/s = {value:.2f}x"
        for cells, value in ratio.items()
    )


def _memory_growth_lines(table: pd.DataFrame) -> str:
    """Peak RSS growth per MB of sparse input between the smallest and largest size of a model.

    The fixed part of the peak (imported libraries, the training runtime) cancels out; what is
    left is the memory that grows with the data. Only rows whose data was read from disk
    (``--data-dir``) are compared, so that the generator's transient is not counted.
    """
    if "data_source" not in table:
        return ""
    read = table[table["data_source"] == "read from .h5mu"]
    lines = []
    for (method, modalities), rows in read.groupby(["method", "modalities"]):
        rows = rows.sort_values("cells")
        if len(rows) < 2:
            continue
        small, large = rows.iloc[0], rows.iloc[-1]
        growth = (large["peak_rss_mb"] - small["peak_rss_mb"]) / (
            large["sparse_input_mb"] - small["sparse_input_mb"]
        )
        lines.append(
            f"- {method} ({modalities}), {small['cells']:,} -> {large['cells']:,} cells: peak RSS "
            f"grows by {growth:.2f} MB per MB of sparse input (fixed part at {small['cells']:,} "
            f"cells: {small['peak_rss_mb']:,.0f} MB)"
        )
    return "\n".join(lines)


def plot(table: pd.DataFrame, path: Path) -> None:
    """Seconds per epoch vs cells, log-log, one line per method and modality set."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = table[table["epoch_s"] > 0]  # memory-only rows time no full epoch
    if table.empty:
        return
    fig, ax = plt.subplots(figsize=(5, 4))
    for (method, modalities), rows in table.groupby(["method", "modalities"]):
        rows = rows.sort_values("cells")
        label = f"{method} ({modalities.replace(',', '+').upper()})"
        ax.plot(rows["cells"], rows["epoch_s"], marker="o", label=label)
    ax.set(xscale="log", yscale="log", xlabel="cells", ylabel="seconds per training epoch")
    ax.set_title(f"Training time per epoch, {table['device'].iloc[0]}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def add_arguments(parser) -> None:
    parser.add_argument("--cells", default="10000,100000", help="comma-separated sizes")
    parser.add_argument("--models", default="mosaicvi,multivi", help=f"of {list(MODELS)}")
    parser.add_argument("--accelerator", default="auto")
    parser.add_argument(
        "--max-steps", type=int, default=-1, help="stop each child after this many steps"
    )
    parser.add_argument(
        "--warmup-steps",
        type=int,
        default=0,
        help="warm up this many steps instead of one epoch (then every epoch is timed)",
    )
    parser.add_argument("--timeout", type=float, default=None, help="seconds per child")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="build each synthetic mosaic once into this folder and have the children read it "
        "(peak RSS then excludes the generator's transient memory); default: built in each child",
    )


def run(args: argparse.Namespace) -> None:
    models = args.models.split(",")
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        raise SystemExit(f"--models: unknown {unknown}; choose from {list(MODELS)}")
    records = []
    for seed in args.seeds:
        for cells in map(int, args.cells.split(",")):
            for model in models:
                record = run_child(model, cells, seed, args)
                if record is not None:
                    records.append(record)
    if records:
        write_speed_results(records, args)
