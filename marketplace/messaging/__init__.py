"""Student-tutor message threads."""
