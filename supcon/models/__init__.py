"""Encoders (by name, through a registry), projection heads and the linear classifier."""

from .heads import HEAD_KINDS, LinearClassifier, ProjectionHead
from .layers import NORMS
from .registry import adopt_encoder, create_encoder, list_encoders, register_encoder
from .resnets import ResNetEncoder  # importing the modules registers their encoders
from .small_resnet import SmallResNet

__all__ = [
    "HEAD_KINDS",
    "NORMS",
    "LinearClassifier",
    "ProjectionHead",
    "ResNetEncoder",
    "SmallResNet",
    "adopt_encoder",
    "create_encoder",
    "list_encoders",
    "register_encoder",
]
