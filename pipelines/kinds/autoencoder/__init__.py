"""How the `autoencoder` kind trains: the network in torch, its fit, export and calibration."""
