"""The driver layer's errors, a leaf module: the agent's own errors (agent/errors.py) build on LoaError,
so the drivers never import the layer above them."""


class LoaError(Exception):
    """Base of every error the agent raises on purpose."""


class DriverError(LoaError, RuntimeError):
    """A driver could not be loaded or failed."""
