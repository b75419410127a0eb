"""Training PatchCore and SoftPatch bundles."""
