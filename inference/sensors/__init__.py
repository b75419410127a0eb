"""The sensor modality: windows of machine readings in, verdict, per-sensor contributions and events out."""
