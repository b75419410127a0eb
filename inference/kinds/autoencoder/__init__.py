"""A convolutional autoencoder on normal images: the reconstruction error is the anomaly map."""
