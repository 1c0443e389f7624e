"""Paper figures drawn from saved runs (never from a live training process).

    style.py      matplotlib object API + Agg, a paper rc context, PNG + PDF written atomically
    curves.py     recon / β / per-latent KL / metrics vs training steps (paper Fig. 2, 6, 7 top)
    traversal.py  latent traversals of a trained run (paper Fig. 3)
    draw.py       every figure that applies to a set of runs, grouped by model

pyplot is never imported: figures leave the caller's matplotlib state alone.
"""

from .draw import draw_figures

__all__ = ["draw_figures"]
