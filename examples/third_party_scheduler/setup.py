"""A third-party disbench plugin: one β scheduler, registered through the
`disbench` entry point. Install it next to disbench and it is found:

    pip install -e examples/third_party_scheduler
    disbench plugins
    disbench train --model vae --gin_param "Run.scheduler = 'cyclical'" ...
"""

from setuptools import setup

setup(
    name="disbench-cyclical-beta",
    version="0.1.0",
    description="Cyclical β annealing (Fu et al. 2019) as a disbench β scheduler",
    py_modules=["cyclical_beta"],
    install_requires=["disbench"],
    entry_points={"disbench": ["cyclical_beta = cyclical_beta"]},
)
