"""The lecture's op table as ``torch.autograd.Function``s, and layers built only from them."""

from descentlab.autograd.ops import (
    AddOp,
    LogSoftmaxOp,
    MatVecOp,
    MulOp,
    PowOp,
    ReLUOp,
    SigmoidOp,
    SumOp,
    add,
    log_softmax,
    matvec,
    mean,
    mul,
    neg,
    pow,
    relu,
    sigmoid,
    sub,
    sum,
    tanh,
)

__all__ = [
    "AddOp", "LogSoftmaxOp", "MatVecOp", "MulOp", "PowOp", "ReLUOp", "SigmoidOp", "SumOp",
    "add", "log_softmax", "matvec", "mean", "mul", "neg", "pow", "relu", "sigmoid", "sub", "sum", "tanh",
]  # fmt: skip
