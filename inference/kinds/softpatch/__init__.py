"""SoftPatch (Jiang et al., NeurIPS 2022): PatchCore trained on data that may hold defects, with
patch-level noise discrimination before the coreset (`noise.py`) and soft weights at scoring."""
