"""The four areas of the TUI and their pushed screens."""
