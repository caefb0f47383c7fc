"""descentlab.api composes the user's configs, as `python train.py` run in the same place does."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from descentlab.api import compose, find_config_dir
from descentlab.errors import ConfigError
from helpers.cli import ROOT, one_error_line

MY_IDEA = """# @package _global_
model:
  net:
    hidden_dims: [7]
"""


@pytest.fixture
def user_checkout(tmp_path, monkeypatch):
    """A user's copy of the template with an experiment of their own, as the working dir."""
    shutil.copytree(ROOT / "configs", tmp_path / "configs")
    (tmp_path / "configs" / "experiment" / "my_idea.yaml").write_text(MY_IDEA)
    (tmp_path / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path / "notebooks")  # like a notebook, one level below
    return tmp_path


def test_api_composes_the_working_directorys_configs(user_checkout, tmp_path):
    assert find_config_dir() == user_checkout / "configs"
    cfg = compose(["+experiment=my_idea"], tmp_path / "run")
    assert list(cfg.model.net.hidden_dims) == [7]


def test_an_explicit_config_dir_wins(user_checkout, tmp_path):
    assert find_config_dir(ROOT / "configs") == ROOT / "configs"
    with pytest.raises(ConfigError, match="config_dir"):
        find_config_dir(tmp_path / "nowhere")


def test_a_plain_hydra_compose_resolves_without_importing_descentlab(tmp_path):
    # Hydra imports the hydra_plugins namespace when it starts; descentlab's module there
    # registers the resolvers the configs use (${n_classes:...}, ...)
    code = (
        "import sys\n"
        "from hydra import compose, initialize_config_dir\n"
        f"with initialize_config_dir({str(ROOT / 'configs')!r}, version_base='1.3'):\n"
        "    cfg = compose('train', overrides=['data.classes=[3,5]'])\n"
        "print(cfg.model.net.num_outputs)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "2"


def test_train_py_refuses_an_experiment_that_is_not_there(tmp_path):
    from helpers.cli import run_cli

    proc = run_cli(["+experiment=my_idea", f"hydra.run.dir={tmp_path}"], check=False)
    assert "my_idea" in one_error_line(proc)
