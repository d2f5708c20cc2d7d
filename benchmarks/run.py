"""Run one benchmark task: ``python benchmarks/run.py --task <task> [options]``.

Tasks (``benchmarks/README.md`` says what each measures and where its table is):
speed, mosaic, diagonal, imputation, adt-imputation, fusion, family, cross-panel, bmmc-panels,
query.
``--task <task> --help`` lists that task's own options next to the common ones.

Usage::

    python benchmarks/run.py --task mosaic --epochs 30 --seeds 0,1,2
    python benchmarks/run.py --task diagonal --epochs 1 --max-cells 600 --skip-scib --out /tmp/b
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _runner import RESULTS, extra_runs, parse_seeds, quiet
from tasks import TASKS


def parser_for(task: str | None) -> tuple[argparse.ArgumentParser, object]:
    """The parser of the common flags plus ``task``'s own, and the task's module."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--task", choices=list(TASKS), required=True)
    if task is None:
        return parser, None
    module = importlib.import_module(f"tasks.{TASKS[task]}")
    parser.epilog = module.__doc__  # what the task measures, under its options
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    common = parser.add_argument_group("common options")
    common.add_argument(
        "--seeds",
        type=parse_seeds,
        default=getattr(module, "SEEDS", "0"),
        help="comma-separated seeds; every model is trained once per seed (default: %(default)s)",
    )
    common.add_argument(
        "--epochs", type=int, default=getattr(module, "EPOCHS", 30), help="(default: %(default)s)"
    )
    common.add_argument(
        "--batch-size",
        type=int,
        default=getattr(module, "BATCH_SIZE", 128),
        help="(default: %(default)s)",
    )
    common.add_argument("--tag", default="", help="suffix of the result file names")
    common.add_argument(
        "--out", type=Path, default=RESULTS, help="result folder (default: benchmarks/results)"
    )
    common.add_argument(
        "--fresh", action="store_true", help="drop the rows of earlier runs from the table"
    )
    common.add_argument("--n-jobs", type=int, default=1, help="scib-metrics worker processes")
    common.add_argument(
        "--max-cells",
        type=int,
        default=None,
        help="SNARE-seq tasks: train on this many cells drawn at random (smoke runs)",
    )
    common.add_argument(
        "--extra-runs",
        type=extra_runs,
        default={},
        help='mosaic, diagonal, imputation: more MosaicVI rows, JSON {"name": {"model": {...}, '
        '"train": {...}}} (MosaicVI and train keyword arguments)',
    )
    module.add_arguments(parser.add_argument_group(f"--task {task} options"))
    return parser, module


def main() -> None:
    task = None
    if "--task" in sys.argv[1:-1]:
        task = sys.argv[sys.argv.index("--task") + 1]
    task = next((a.split("=", 1)[1] for a in sys.argv if a.startswith("--task=")), task)
    parser, module = parser_for(task if task in TASKS else None)
    args = parser.parse_args()
    if module is None:  # --task was missing or unknown: argparse has said so
        parser.error(f"choose a task: {', '.join(TASKS)}")
    if isinstance(args.seeds, str):
        args.seeds = parse_seeds(args.seeds)
    args.out.mkdir(parents=True, exist_ok=True)
    quiet()
    module.run(args)


if __name__ == "__main__":
    main()
