"""What a model learns: one small class per task (see :mod:`descentlab.tasks.base`)."""

from descentlab.tasks.base import Task
from descentlab.tasks.binary import Binary
from descentlab.tasks.classification import Classification
from descentlab.tasks.regression import Regression

__all__ = ["Binary", "Classification", "Regression", "Task"]
