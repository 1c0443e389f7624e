"""A third-party disbench plugin: the MLflow logger (``--logger mlflow``),
registered through the `disbench` entry point. Install it next to disbench:

    pip install -e examples/mlflow_logger
    disbench plugins                      # lists mlflow_logger and its logger
    disbench train --model vae --protocol smoke --logger mlflow
"""

from setuptools import setup

setup(
    name="disbench-mlflow-logger",
    version="0.1.0",
    description="MLflow logger for disbench runs",
    py_modules=["mlflow_logger"],
    install_requires=["disbench", "mlflow>=2.0"],
    entry_points={"disbench": ["mlflow_logger = mlflow_logger"]},
)
