from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
VERSION = {}
exec((HERE / "disbench" / "version.py").read_text(), VERSION)  # one place for the version, read without importing torch


def gin_data_files():
    # gin/ is not a package (it must never shadow the `gin` module); install its
    # files (protocols, models, studies) under <prefix>/share/disbench/gin so non-editable installs find them.
    out = []
    for folder in sorted(p for p in (HERE / "gin").rglob("*") if p.is_dir()):
        files = sorted(str(f.relative_to(HERE)) for pattern in ("*.gin", "*.toml") for f in folder.glob(pattern))
        if files:
            out.append((f"share/disbench/{folder.relative_to(HERE)}", files))
    return out


setup(
    name="disbench",
    version=VERSION["__version__"],
    description="A plugin-based, gin-configured benchmark harness for disentangled representation "
                "learning, with the DynamicVAE plugin.",
    long_description=(HERE / "README.md").read_text() if (HERE / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["disbench", "disbench.*", "dvae_plugin", "dvae_plugin.*"]),
    data_files=gin_data_files(),
    # torch is not pinned: install the build that fits the machine first
    # (here: `pip install torch==2.13.0`, the CPU wheel on disk).
    install_requires=[
        "torch>=2.1",
        "numpy>=1.24",
        "gin-config>=0.5",
        "pluggy>=1.3",
        "tqdm>=4.60",
        "matplotlib>=3.7",
        "Pillow>=9.0",
        "h5py>=3.8",
    ],
    extras_require={
        "test": ["pytest>=7", "hypothesis>=6", "scikit-learn>=1.2", "scipy>=1.10", "tensorboard>=2.10",
                 "pandas>=1.5"],
        # the disentanglement_lib metrics (dci, sap, modularity, factorvae_score, betavae_score)
        "metrics": ["scikit-learn>=1.2"],
        # cars3d's MATLAB files
        "datasets": ["scipy>=1.10"],
        # --logger tensorboard
        "tensorboard": ["tensorboard>=2.10"],
        # disbench.load_compare(..., as_dataframe=True)
        "pandas": ["pandas>=1.5"],
        # compare/sweep --backend ray
        "ray": ["ray>=2.9"],
    },
    entry_points={
        "console_scripts": ["disbench = disbench.cli:main"],
        "disbench": ["dvae = dvae_plugin.plugin"],
    },
)
