"""Answers to the exercises of notebook 03 (initialization)."""

import math

# 1. Each layer multiplies the variance by n_in · s² = 100 · 0.12² = 1.44: at layer 5, 1.44⁵ ≈ 6.19.
variance_layer = 5
variance_answer = (100 * 0.12**2) ** 5

# 2. Xavier: var(w) = 2/(n_in + n_out) = 2/400, s = √(2/400) ≈ 0.0707.
xavier_std_answer = math.sqrt(2 / (300 + 100))

# 3. (128 s²)^50 within [1/2, 2] when 128 s² = 1 up to 2^(±1/50): s = 1/√128 ≈ 0.0884.
depth_std_answer = 1 / math.sqrt(128)
