"""Bring-your-own object detectors: Ultralytics-format ONNX graphs (YOLOv8, YOLO11) served with numpy and ONNX Runtime."""
