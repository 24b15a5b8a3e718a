"""courses domain (see DESIGN.md)."""
