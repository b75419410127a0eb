"""Pipeline step programs, in SageMaker container conventions, run the same in SageMaker and locally.

Processing steps read `/opt/ml/processing/...` (overridable by arguments); the training step reads
channels, the model directory and string hyperparameters the way SageMaker provides them.
"""
