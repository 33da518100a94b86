"""Speech recognition engines behind the ``Recognizer`` interface."""
