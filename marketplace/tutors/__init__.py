"""Tutor profiles (filled in by the profiles issue)."""
