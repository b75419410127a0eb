"""IVADAS training: backbones, datasets, training and evaluation, the pipeline and its registry."""
