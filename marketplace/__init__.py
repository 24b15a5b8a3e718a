"""Cadenza: the marketplace core and application shell."""
