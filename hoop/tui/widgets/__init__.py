"""Widgets shared by the TUI's areas."""
