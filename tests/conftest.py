import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _sb3_logs_in_tmp_path(tmp_path, monkeypatch):
    """SB3's default logger makes an SB3-<date> folder in the system temp folder on every learn()
    without a log folder: point it into the test's own tmp_path (subprocesses inherit it)."""
    monkeypatch.setenv("SB3_LOGDIR", str(tmp_path / "sb3_logs"))
