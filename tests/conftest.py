"""Fixtures that several test files share (each file used to carry its own copy)."""

import pytest


@pytest.fixture
def one_thread():
    """One torch thread for the test, then the previous setting (tiny models gain nothing from
    more, and the test processes share the machine's cores)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tracking_uri(tmp_path_factory) -> str:
    """One sqlite MLflow store per test module (creating its tables takes seconds)."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow')}/mlflow.db"
