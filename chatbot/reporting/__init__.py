"""Figures for operators: totals and per-day analytics, read from the store."""
