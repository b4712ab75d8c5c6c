"""The published numbers of ShuffleNet V2 (Ma et al., ECCV 2018), Tables 1-4 (guidelines G1-G4).

GPU: one GTX 1080Ti, CUDNN 7.0, batch 8, batches/s. ARM: Snapdragon 810, a NEON-optimised implementation,
one thread, batch 1, images/s. Each guideline network stacks 10 identical blocks. Copied from the paper's
tables (also in the project's design references) so the package needs nothing outside itself.
"""

from __future__ import annotations

# Table 1 (G1): c1:c2 -> ((c1, c2) for GPU x1, GPU x1/x2/x4, (c1, c2) for ARM x1, ARM x1/x2/x4)
G1 = {
    "1:1": ((128, 128), (1480, 723, 232), (32, 32), (76.2, 21.7, 5.3)),
    "1:2": ((90, 180), (1296, 586, 206), (22, 44), (72.9, 20.5, 5.1)),
    "1:6": ((52, 312), (876, 489, 189), (13, 78), (69.1, 17.9, 4.6)),
    "1:12": ((36, 432), (748, 392, 163), (9, 108), (57.6, 15.1, 4.4)),
}

# Table 2 (G2): g -> (c for GPU x1, GPU x1/x2/x4, c for ARM x1, ARM x1/x2/x4)
G2 = {
    1: (128, (2451, 1289, 437), 64, (40.0, 10.2, 2.3)),
    2: (180, (1725, 873, 341), 90, (35.0, 9.5, 2.2)),
    4: (256, (1026, 644, 338), 128, (32.9, 8.7, 2.1)),
    8: (360, (634, 445, 230), 180, (27.8, 7.5, 1.8)),
}

# Table 3 (G3): structure -> (GPU at c = 128/256/512, ARM at c = 64/128/256)
G3_GPU_C = (128, 256, 512)
G3_ARM_C = (64, 128, 256)
G3 = {
    "1-fragment": ((2446, 1274, 434), (40.2, 10.1, 2.3)),
    "2-fragment-series": ((1790, 909, 336), (38.6, 10.1, 2.2)),
    "4-fragment-series": ((752, 745, 349), (38.4, 10.1, 2.3)),
    "2-fragment-parallel": ((1537, 803, 320), (33.4, 9.1, 2.2)),
    "4-fragment-parallel": ((691, 572, 292), (35.0, 8.4, 2.1)),
}

# Table 4 (G4): (ReLU, shortcut) -> (GPU at c = 32/64/128, ARM at c = 32/64/128)
G4_C = (32, 64, 128)
G4 = {
    (True, True): ((2427, 2066, 1436), (56.7, 16.9, 5.0)),
    (True, False): ((2647, 2256, 1735), (61.9, 18.8, 5.2)),
    (False, True): ((2672, 2121, 1458), (57.3, 18.2, 5.1)),
    (False, False): ((2842, 2376, 1782), (66.3, 20.2, 5.4)),
}
