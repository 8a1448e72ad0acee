"""Mappings: source -> filter chain -> target."""
