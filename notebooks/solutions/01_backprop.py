"""Answers to the exercises of notebook 01 (backpropagation)."""

import math

from descentlab.autograd.engine import Value

# 1. ∂ℒ/∂w at w = −1, b = 0.5, x = 2, y = 0, λ = 0.05: both paths into w.
#    z = −1.5, u = σ(z) = 0.18243, ∂ℒ/∂u = u − y = 0.18243, ∂ℒ/∂z = ∂ℒ/∂u · u(1 − u) = 0.027209;
#    through z: ∂ℒ/∂z · x = 0.054418; through r: λ · 2w = −0.1. The regularizer wins: w grows.
_u = 1 / (1 + math.exp(1.5))
dL_dw_answer = (_u - 0.0) * _u * (1 - _u) * 2.0 + 0.05 * 2 * (-1.0)


# 2. tanh from the table's rows: tanh(a) = 2σ(2a) − 1 (a mul, a sigmoid, a mul, an add).
def my_tanh(a: Value) -> Value:
    return 2 * (2 * a).sigmoid() - 1


# 3. With a Softmax before CrossEntropyLoss the logits are probabilities p ∈ [0, 1]; the best
#    p is one-hot, and −log(e¹ / (e¹ + 9 e⁰)) = ln(1 + 9/e) ≈ 1.4612.
softmax_floor_answer = math.log(1 + 9 / math.e)
