"""Measurements behind `rtsearch bench`: one module per stage, each returning plain dicts."""
