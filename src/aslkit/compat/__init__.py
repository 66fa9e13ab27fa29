"""Compatibility fixes for the pinned dependency stack."""
