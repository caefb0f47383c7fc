"""Layers and a loss built only from the op table (``ops.py``).

``OpLinear`` has exactly ``nn.Linear``'s parameters and initialization, so
``model.net.ops=optable`` and ``ops=native`` build the same network from the same seed.
"""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn import functional as F

from descentlab.autograd import ops


class OpLinear(nn.Linear):
    """z = W u + b, as ``add(matvec(u, W), b)``."""

    def forward(self, u: Tensor) -> Tensor:
        z = ops.matvec(u, self.weight)
        return ops.add(z, self.bias) if self.bias is not None else z


class OpReLU(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return ops.relu(x)


class OpSigmoid(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return ops.sigmoid(x)


class OpTanh(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return ops.tanh(x)


class OpIdentity(nn.Identity):
    pass


OP_ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": OpReLU,
    "sigmoid": OpSigmoid,
    "tanh": OpTanh,
    "identity": OpIdentity,
}


def op_cross_entropy(logits: Tensor, target: Tensor) -> Tensor:
    """ℓ = −(1/n) Σ_i log softmax(logits_i)[y_i], as −mean(Σ_c onehot ⊙ log_softmax).

    The one-hot matrix is a constant, so the gradient reaching the logits is
    (softmax − onehot)/n, exactly what ``F.cross_entropy`` computes.
    """
    onehot = F.one_hot(target, logits.shape[-1]).to(logits.dtype)
    picked = ops.sum(ops.mul(ops.log_softmax(logits, dim=-1), onehot), dim=-1)
    return ops.neg(ops.mean(picked))


def native_forward(net: nn.Module, x: Tensor) -> Tensor:
    """Run an optable ``net`` with torch's native ops on the same parameters.

    The reference the op-verification callback compares against.
    """
    for layer in net:
        if isinstance(layer, OpLinear):
            x = F.linear(x, layer.weight, layer.bias)
        elif isinstance(layer, OpReLU):
            x = F.relu(x)
        elif isinstance(layer, OpSigmoid):
            x = x.sigmoid()
        elif isinstance(layer, OpTanh):
            x = x.tanh()
        else:
            x = layer(x)  # Flatten, Identity, Dropout: no op-table arithmetic
    return x
