"""Subcommands of `hoop` beyond the foundation, one module per area."""
