"""Datasets from the local data folder (never downloaded) and their spike encodings."""
