"""A third-party disbench plugin: two β schedulers — an open-loop one (cyclical_beta.py)
and a closed-loop one written as a control law (kl_target_beta.py) — each registered
through the `disbench` entry point. Install it next to disbench and they are found:

    pip install -e examples/third_party_scheduler
    disbench plugins
    disbench train --model vae --gin_param "Run.scheduler = 'cyclical'" ...
    disbench compare --models vae --seeds 1-3 --fuse 3 --gin_param "Run.scheduler = 'kl_target'" ...
"""

from setuptools import setup

setup(
    name="disbench-cyclical-beta",
    version="0.1.0",
    description="Cyclical β annealing (Fu et al. 2019) and a GECO-style KL target as disbench β schedulers",
    py_modules=["cyclical_beta", "kl_target_beta"],
    install_requires=["disbench"],
    entry_points={"disbench": ["cyclical_beta = cyclical_beta", "kl_target_beta = kl_target_beta"]},
)
