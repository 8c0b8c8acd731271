"""ibrepro: the information plane of deep networks, reproduced."""

__version__ = "0.1.0"
