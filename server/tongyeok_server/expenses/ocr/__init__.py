"""Optical character recognition for receipts: a picture in, lines of text with positions and confidences out."""
