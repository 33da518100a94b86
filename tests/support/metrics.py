"""Reading a server's ``/metrics`` in tests: free ports, one scrape as a table of samples."""

from __future__ import annotations

import socket
import urllib.request
from collections.abc import Mapping

from prometheus_client.parser import text_string_to_metric_families


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Samples:
    """One scrape: every sample by name and labels."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.samples: list[tuple[str, dict[str, str], float]] = [
            (s.name, dict(s.labels), s.value) for family in text_string_to_metric_families(text) for s in family.samples
        ]

    def value(self, name: str, **labels: str) -> float:
        """The sum of the samples named ``name`` whose labels include ``labels`` (0 when there is none)."""
        return sum(v for n, ls, v in self.samples if n == name and _matches(ls, labels))

    def labels(self, name: str, label: str) -> set[str]:
        """Every value label ``label`` takes in samples named ``name``."""
        return {ls[label] for n, ls, _ in self.samples if n == name and label in ls}


def _matches(have: Mapping[str, str], want: Mapping[str, str]) -> bool:
    return all(have.get(k) == v for k, v in want.items())


def scrape(port: int, host: str = "127.0.0.1") -> Samples:
    """GET ``/metrics``."""
    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=10) as response:
        return Samples(response.read().decode())
