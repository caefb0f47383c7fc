"""Solutions to the exercises of notebook 04 (generalization)."""

# 1. a share p is replaced; a replacement is wrong with probability 1 − 1/K
wrong_share = 0.5 * (1 - 1 / 10)  # 0.45

# 2. λ‖w‖² has gradient 2λw; torch's weight_decay adds weight_decay · w
torch_weight_decay = 2 * 0.02  # 0.04

# 3. E[m_i] = 1 − p: multiply by 0.7 at evaluation
eval_factor = 1 - 0.3

# 4. mean 0.003, standard error 0.0033: |mean| < 2 SE
verdict = "noise"
