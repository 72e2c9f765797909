"""Backends: one module each, imported lazily by mx_dcn.registry."""
