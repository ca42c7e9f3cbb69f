"""PALO: a contract-first API server for project and ticket management."""

__version__ = "1.0.0"
