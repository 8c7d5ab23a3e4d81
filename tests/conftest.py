"""Shared fixtures: tests run on CPU, offline, with tiny sizes; outputs go under tmp_path."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def project_root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def synthetic_data_dir(tmp_path_factory) -> Path:
    """A data folder shared by the session, where the synthetic head model is generated once."""
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="session")
def synthetic_head_model(synthetic_data_dir):
    """The embedded synthetic head as a HeadModel (generated once per test session)."""
    from albedogan.flame.head import HeadModel

    return HeadModel.synthetic(synthetic_data_dir, n_shape=300, n_exp=50)


@pytest.fixture(autouse=True)
def _no_hydra_runtime_left_behind():
    """Clear Hydra's process-wide runtime config after each test: tests that compose and instantiate in-process
    (config tests, the CLI preflight) set it, and a stale one breaks later in-process runs (``hydra.runtime``)."""
    yield
    from hydra.core.hydra_config import HydraConfig

    HydraConfig.instance().cfg = None
