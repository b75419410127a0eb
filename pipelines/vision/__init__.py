"""The image modality's training side: MVTec-layout datasets, splits, evaluation, synthetic demo
data, backbones and their INT8 quantization."""
