"""Supervised Contrastive Learning (Khosla et al., 2020) in PyTorch."""

__version__ = "0.1.0"

__all__ = ["__version__", "train", "load_encoder", "supcon_loss", "SupConLoss"]


def __getattr__(name: str):
    # Lazy so that `import supcon` stays light and the CLI starts fast.
    if name == "train":
        from .api import train

        return train
    if name == "load_encoder":
        from .weights import load_encoder

        return load_encoder
    if name in ("supcon_loss", "SupConLoss"):
        from . import losses

        return getattr(losses, name)
    raise AttributeError(f"module 'supcon' has no attribute {name!r}")
