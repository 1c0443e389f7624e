"""A third-party disbench plugin: the Weights & Biases logger (``--logger wandb``),
registered through the `disbench` entry point. Install it next to disbench:

    pip install -e examples/wandb_logger
    disbench plugins                      # lists wandb_logger and its logger
    disbench train --model vae --protocol smoke --logger wandb
"""

from setuptools import setup

setup(
    name="disbench-wandb-logger",
    version="0.1.0",
    description="Weights & Biases logger for disbench runs",
    py_modules=["wandb_logger"],
    install_requires=["disbench", "wandb>=0.19.10"],
    entry_points={"disbench": ["wandb_logger = wandb_logger"]},
)
