"""The embedded local stack: endpoints, a SageMaker-runtime-compatible route, the API and the UI."""
