"""Tongyeok server: real-time speech interpretation over gRPC."""

__version__ = "0.1.0"
