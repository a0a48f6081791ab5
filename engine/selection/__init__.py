"""Choosing rows: k-means clusters, exact and near duplicates, per-language budgets."""
