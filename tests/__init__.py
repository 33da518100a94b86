"""Tongyeok tests: unit, over-the-wire and end-to-end."""
