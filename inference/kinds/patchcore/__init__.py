"""PatchCore (Roth et al., CVPR 2022): a memory bank of pretrained patch features and nearest-neighbour
distances. The maths lives in plain modules named by role; `config.py` holds every default."""
