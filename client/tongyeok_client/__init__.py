"""Tongyeok client: stubs, a high-level client and the ``tongyeok`` CLI."""

__version__ = "0.1.0"
