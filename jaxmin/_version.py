"""The version of jaxmin: written here only (pyproject.toml reads it, `jm.__version__` is it)."""

__version__ = "0.1.0"
