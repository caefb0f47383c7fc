"""Answers to the exercises of notebook 02 (variants of gradient descent)."""

# 1. η = 1 on the saddle: μ = 0.5 escapes (y > 1) at step 9 and stays within 0.1 of (0, √2)
#    from step 18. Any μ from about 0.35 to 0.63 works: below 1/3 = (2η − 1)/(2η + 1) the notes'
#    momentum is unstable at the minimum, above about 0.6 its average lags too long.
mu_answer = 0.5

# 2. torch's buffer b ← μb + g sums the gradients, the notes' v ← μv + (1 − μ)g averages them:
#    b = v/(1 − μ) for the same gradients (torch's first b is g, the notes' first v is (1 − μ)g),
#    so torch needs lr = η(1 − μ) = 0.1 · 0.1 = 0.01.
torch_lr_answer = 0.1 * (1 - 0.9)

# 3. v_t = (1 − μᵗ) g under a constant gradient: v_5 = (1 − 0.9⁵) · 2 = 0.81902.
v5_answer = (1 - 0.9**5) * 2.0
