"""Datasets from the local data folder (never downloaded) and their spike encodings.

``snndeploy.data.datasets.make_splits(name, ...)`` is the entry point; ``snndeploy.data.readers`` reads the files.
"""
