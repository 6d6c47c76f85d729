"""Datasets: simulation (and later fetching) into the dataset Zarr store."""
