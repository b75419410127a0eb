"""The model kinds an endpoint can serve."""

MODEL_KINDS = ("patchcore", "softpatch")
