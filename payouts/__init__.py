"""payouts domain (see DESIGN.md)."""
