"""Reporting: reading typed records into leaderboards, plots and the web site (never running anything)."""
