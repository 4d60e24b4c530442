"""Baton: lead scoring and sales handoff. Importable by the app, the CLI and notebooks."""

__version__ = "0.1.0"
