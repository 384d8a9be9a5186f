"""Drift and quality monitoring: captured inference data against the training reference."""
