"""Hoop: an access gateway between people and infrastructure."""
