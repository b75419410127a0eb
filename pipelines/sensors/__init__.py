"""Sensor time series in the pipeline: datasets, splits, training glue, evaluation, demo data."""
