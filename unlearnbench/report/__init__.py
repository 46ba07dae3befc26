"""Reporting: typed records, provenance, leaderboards and plots."""
