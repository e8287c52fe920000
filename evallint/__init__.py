"""evallint: find train/eval-mode and grad-mode mistakes in PyTorch code without running it."""

__version__ = "0.1.0"
