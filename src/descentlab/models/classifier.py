"""The module's name before tasks existed: checkpoints and configs written then name
``descentlab.models.classifier.Classifier``; it is :class:`TaskModule` (a classification task
unless told otherwise)."""

from descentlab.models.module import TaskModule as Classifier

__all__ = ["Classifier"]
