"""loa-agent: the device side of the provincial source information system."""

__version__ = "0.1.0"
