"""Bring-your-own detectors: import (checks, bundle, registration), evaluation on a labelled YOLO-format set."""
