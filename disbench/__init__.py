"""disbench: a plugin-based, gin-configured benchmark harness for disentangled
representation learning."""

__version__ = "0.1.0"


def load_run(path, device="cpu"):
    """A finished run, rebuilt for use in Python (see :func:`disbench.api.load_run`):
    ``run.model``, ``run.results``, ``run.scalars``, ``run.encode(images)``,
    ``run.decode(z)``, ``run.traverse(image, latent, values)``."""
    from .api import load_run as _load_run

    return _load_run(path, device=device)


def load_compare(path, *, as_dataframe=False, same_execution=False):
    """The rows of a comparison's table as a list of dicts, or a pandas DataFrame,
    with how each row's runs were executed (see :func:`disbench.api.load_compare`)."""
    from .api import load_compare as _load_compare

    return _load_compare(path, as_dataframe=as_dataframe, same_execution=same_execution)
