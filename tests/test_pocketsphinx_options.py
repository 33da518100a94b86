"""pocketsphinx's engine options are checked before any worker starts."""

from __future__ import annotations

import pytest

from tongyeok_server.errors import StartError
from tongyeok_server.recognition.pocketsphinx_engine import PocketsphinxRecognizer


def test_an_unknown_second_pass_mode_is_refused() -> None:
    with pytest.raises(
        StartError, match="--pocketsphinx-second-pass 'sometimes': choose one of narrowband, always, never"
    ):
        PocketsphinxRecognizer(1, 1, "sometimes")
