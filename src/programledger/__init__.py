"""programledger: the event-sourced system of record for program management."""

__all__ = ["__version__"]

__version__ = "0.1.0"
