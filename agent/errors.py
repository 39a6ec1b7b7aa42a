"""One base exception, one subclass per layer (builtins mixed in, as gpiozero does).

LoaError and DriverError live in the driver layer (drivers/errors.py) and are re-exported here.
"""

from drivers.errors import DriverError, LoaError

from .i18n import Msg

__all__ = ["ConfigError", "DriverError", "IpcError", "LoaError", "Rejection", "SchemaError"]


class ConfigError(LoaError, ValueError):
    """The configuration is invalid; `problems` lists every `section.key: what` line (Msgs, mostly)."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


class SchemaError(LoaError, ValueError):
    """A document field is missing or wrong; `field` names it (dotted path)."""

    def __init__(self, field: str, what: str):
        self.msg = Msg("%(field)s: %(what)s", field=field, what=what) if field else what
        super().__init__(self.msg)
        self.field = field
        self.what = what


class Rejection(LoaError):
    """A message refused at intake; `code` is one of PROTOCOL.md's ack codes; `message` the ack's English text
    (a Msg where it can be shown in the technician's language)."""

    def __init__(self, code: str, message: str, *, jti: str | None = None, type_: str | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.jti = jti
        self.type = type_


class IpcError(LoaError, OSError):
    """The local socket could not be reached or answered badly."""
