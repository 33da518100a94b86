"""Translation engines behind the ``Translator`` interface."""
