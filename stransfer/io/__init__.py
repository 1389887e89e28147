"""Stage 1: images in and out (safe loading, resizing, colour, animations, run records)."""
