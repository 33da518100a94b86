"""Speech output: the translations spoken, in the same stream (``Synthesizer`` engines and the speaker)."""
