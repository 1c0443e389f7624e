"""disbench: a plugin-based, gin-configured benchmark harness for disentangled
representation learning."""

from .version import __version__


def load_run(path, device="cpu"):
    """A finished run, rebuilt for use in Python (see :func:`disbench.api.load_run`):
    ``run.model``, ``run.results``, ``run.scalars``, ``run.encode(images)``,
    ``run.decode(z)``, ``run.traverse(image, latent, values)``."""
    from .api import load_run as _load_run  # here, not at the top: `import disbench` stays light (no torch)

    return _load_run(path, device=device)


def load_compare(path, *, as_dataframe=False, same_execution=False):
    """The rows of a comparison's table as a list of dicts, or a pandas DataFrame,
    with how each row's runs were executed (see :func:`disbench.api.load_compare`)."""
    from .api import load_compare as _load_compare  # here, not at the top: `import disbench` stays light (no torch)

    return _load_compare(path, as_dataframe=as_dataframe, same_execution=same_execution)


__all__ = ["__version__", "load_run", "load_compare"]
