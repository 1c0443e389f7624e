"""Many runs under one protocol: what ``disbench compare`` and ``disbench report`` do.

    plan.py       the (model, seed) grid, its run directories and what each needs
    execute.py    run the jobs in-process or in spawned worker processes
    locks.py      one process at a time per run directory
    ray_backend.py  the jobs as Ray tasks (--backend ray)
    sweep.py      a sweep's grid of gin bindings: parsing, points, what may vary
    fuse.py       --fuse K|auto: how many runs one fused group trains
    manifest.py   DIR/compare.json: the command, the grid and each run's status
    aggregate.py  read the runs back, refuse mixed protocols, mean ± std per model
    tables.py     DIR/table.md (paper Table 1 layout) and DIR/table.csv
    report.py     tables + figures for a compare directory

A compare directory::

    DIR/compare.json
    DIR/runs/MODEL/seedS/      ordinary run directories (disbench.runs)
    DIR/runs/MODEL/POINT/seedS/  a sweep's (POINT: ki=0.01,stop=14)
    DIR/runs/MODEL/.seedS.lock   who is training the run (disbench.locks)
    DIR/table.md, DIR/table.csv
    DIR/figures/*.png, *.pdf
"""
