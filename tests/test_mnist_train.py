import numpy as np
import pytest
from helpers import mnist_data_dir

from ibrepro import config as cfg
from ibrepro.train.loop import train_cell
from ibrepro.train.runfile import open_run

MNIST_DIR = mnist_data_dir()
pytestmark = pytest.mark.skipif(MNIST_DIR is None,
                                reason="no MNIST files in ../shared/data/mnist or $IBREPRO_DATA_DIR")


def test_tiny_mnist_cell_trains_and_writes_the_contract(tmp_path):
    config = cfg.resolve({"name": "m", "dataset": "mnist", "data": {"dir": str(MNIST_DIR)}},
                         ["model.hidden=[64, 16]", "train.seeds=2", "train.epochs=3", "train.batch_size=64",
                          "train.lr=1e-3", "train.train_fraction=0.1", "log.snapshots=4",
                          "log.eval_samples=1000", "log.train_metric_samples=2000"])
    path = tmp_path / "cell.h5"
    train_cell("cell", config, path)
    with open_run(path) as f:
        assert f["data/x"].shape == (1000, 784) and f["data/y"].shape == (1000,)
        assert np.bincount(f["data/y"][()], minlength=10).min() >= 85  # class-stratified eval set
        assert not f["data/train_mask"][()].any()  # eval rows are test images
        assert f["activations/0"].shape == (2, 4, 1000, 64)
        assert f["activations/0"].dtype == np.float32  # float32 unless log.dtype says otherwise
        assert f["activations/2"].shape == (2, 4, 1000, 10)
        test_acc = f["metrics/test_acc"][()]
        assert (test_acc[:, -1] > 0.85).all(), test_acc
        assert (test_acc[:, 0] < 0.3).all()  # before training: chance level
        assert f["gradients/mean_norm"].shape == (2, 4, 3)
