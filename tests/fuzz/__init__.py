"""Fuzz cases and harness: hostile checkpoint files, each refused in one line or read."""
