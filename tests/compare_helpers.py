"""Helpers of the compare/report tests."""

import json
from pathlib import Path

from tests.conftest import TOY_PROTOCOL

MODELS, SEEDS = ("vae", "betavae_h"), (1, 2)
FIGURES = ("recon_vs_steps", "beta_vs_steps", "kl_per_latent", "traversal_vae", "traversal_betavae_h")


def compare_args(out, *extra, models="vae,betavae_h", seeds="1-2"):
    return ["compare", "--models", models, "--seeds", seeds, "--protocol", TOY_PROTOCOL, "--out", str(out),
            "--device", "cpu", "--no-progress", *extra]


def results(run_dir):
    return json.loads((Path(run_dir) / "results.json").read_text())


def md_table(text, title):
    """The rows (lists of cells) of the markdown table under '## title'."""
    lines = text.split(f"## {title}\n", 1)[1].strip().split("\n\n")[0].splitlines()
    return [[c.strip() for c in line.strip("|").split("|")] for line in lines if not line.startswith("| :--")]
