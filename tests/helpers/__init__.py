"""What the tests share: the real CLI, composed configs, small files in real formats.

Import from the submodules (``from helpers.cli import run_cli``); ``tests/`` is on
``sys.path`` (pytest's rootdir insertion), so ``helpers`` is importable from any test.
"""

import pytest
import torch

HAS_GPU = torch.cuda.is_available()
requires_gpu = pytest.mark.skipif(not HAS_GPU, reason="needs a CUDA GPU")
