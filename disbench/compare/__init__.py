"""Many runs under one protocol: what ``disbench compare`` and ``disbench report`` do.

    plan.py       the (model, seed) grid, its run directories and what each needs
    execute.py    run the jobs in-process or in spawned worker processes
    manifest.py   DIR/compare.json: the command, the grid and each run's status
    aggregate.py  read the runs back, refuse mixed protocols, mean ± std per model
    tables.py     DIR/table.md (paper Table 1 layout) and DIR/table.csv
    report.py     tables + figures for a compare directory

A compare directory::

    DIR/compare.json
    DIR/runs/MODEL/seedS/      ordinary run directories (disbench.runs)
    DIR/table.md, DIR/table.csv
    DIR/figures/*.png, *.pdf
"""
