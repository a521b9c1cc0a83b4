"""Temporal workflows: the thin, deterministic shell around the domain decider."""
