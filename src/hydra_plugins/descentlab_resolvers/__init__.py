"""Registers descentlab's config resolvers (``${n_classes:...}`` and the others) whenever Hydra
starts: Hydra imports every module of the ``hydra_plugins`` namespace package when it looks
for plugins, so a plain ``hydra.compose`` of descentlab's configs resolves them without
importing ``descentlab`` first."""

import descentlab.config  # noqa: F401  (registers the resolvers on import)
