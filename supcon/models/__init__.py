"""Encoders (by name, through a registry; text encoders from transformers folders), projection
heads and the linear classifier."""

from .heads import HEAD_KINDS, LinearClassifier, ProjectionHead
from .layers import NORMS
from .registry import adopt_encoder, create_encoder, list_encoders, register_encoder
from .resnets import ResNetEncoder  # importing the modules registers their encoders
from .small_resnet import SmallResNet
from .text import TextEncoder, adopt_text_encoder, create_text_encoder

__all__ = [
    "HEAD_KINDS",
    "NORMS",
    "LinearClassifier",
    "ProjectionHead",
    "ResNetEncoder",
    "SmallResNet",
    "TextEncoder",
    "adopt_text_encoder",
    "adopt_encoder",
    "create_encoder",
    "create_text_encoder",
    "list_encoders",
    "register_encoder",
]
