"""One module per benchmark task; each has ``add_arguments(parser)`` and ``run(args)``.

A task module may also set ``EPOCHS``, ``BATCH_SIZE`` and ``SEEDS``: the defaults of the common
``--epochs``, ``--batch-size`` and ``--seeds`` flags of ``run.py`` for that task.
"""

#: ``--task`` name -> module of this package.
TASKS = {
    "speed": "speed",
    "mosaic": "mosaic",
    "diagonal": "diagonal",
    "imputation": "imputation",
    "fusion": "fusion",
    "family": "family",
    "cross-panel": "cross_panel",
    "bmmc-panels": "bmmc_panels",
    "query": "query",
    "adt-imputation": "adt_imputation",
}
