"""Audio formats and conversion to what recognisers need."""
