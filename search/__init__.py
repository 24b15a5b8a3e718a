"""search domain (see DESIGN.md)."""
