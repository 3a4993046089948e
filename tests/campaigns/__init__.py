"""Campaigns: long randomised runs against a real server (crash; fuzz and load to come).

Each has a short form that ``make test`` runs and a long form run by hand
(docs/operations.md)."""
