"""The count core: validation, bit packing and pairwise counts (the only numba), Dice/IoU from counts."""
