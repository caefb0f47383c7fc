"""The lecture's optimizers as ``torch.optim.Optimizer`` subclasses, in its notation."""

from descentlab.optim.adam import Adam
from descentlab.optim.adaptive import Adaptive
from descentlab.optim.momentum import Momentum
from descentlab.optim.sgd import SGD

__all__ = ["SGD", "Adam", "Adaptive", "Momentum"]
