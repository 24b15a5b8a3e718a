"""scheduling domain (see DESIGN.md)."""
