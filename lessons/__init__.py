"""lessons domain (see DESIGN.md)."""
