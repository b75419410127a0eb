"""The image modality: decoding, ONNX backbones, heatmaps and regions, and the image serving path
that every image model kind shares."""
