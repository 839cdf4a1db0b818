"""PyTorch networks. Shipped inside every registered model, so keep it small."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class MLP(nn.Module):
    """Dense network: Linear -> ReLU (-> Dropout) per hidden layer, then a linear head."""

    def __init__(self, n_inputs: int, n_outputs: int, hidden_layers: list[int], dropout: float):
        super().__init__()
        layers: list[nn.Module] = []
        width = n_inputs
        for h in hidden_layers:
            layers += [nn.Linear(width, h), nn.ReLU()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = h
        layers.append(nn.Linear(width, n_outputs))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map a batch of feature rows to logits (or a regression output)."""
        return self.layers(x)


class SmallCNN(nn.Module):
    """Two 3x3 conv blocks over the pixel features, then a dense head.

    The first ``height * width`` input features are the pixels (row-major); any further features
    (non-pixel columns) are concatenated after the convolutional trunk.
    """

    def __init__(self, n_inputs: int, n_outputs: int, image_shape: tuple[int, int], dropout: float):
        super().__init__()
        self.height, self.width = image_shape
        self.n_pixels = self.height * self.width
        self.trunk = nn.Sequential(
            nn.Conv2d(1, 16, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 32, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
        )
        trunk_out = 32 * (self.height // 2) * (self.width // 2)
        self.head = nn.Sequential(
            nn.Linear(trunk_out + n_inputs - self.n_pixels, 128),
            nn.ReLU(),
            nn.Dropout(dropout) if dropout > 0 else nn.Identity(),
            nn.Linear(128, n_outputs),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map a batch of feature rows (pixels first) to logits."""
        pixels = x[:, : self.n_pixels].reshape(-1, 1, self.height, self.width)
        extra = x[:, self.n_pixels :]
        return self.head(torch.cat([self.trunk(pixels), extra], dim=1))


def build_network(spec: dict[str, Any]) -> nn.Module:
    """Build an untrained network from its JSON spec.

    Args:
        spec: ``architecture`` (``mlp``/``cnn``), ``n_inputs``, ``n_outputs``, ``hidden_layers``,
            ``dropout`` and, for the CNN, ``image_shape``.

    Returns:
        The network, in training mode.
    """
    if spec["architecture"] == "cnn":
        h, w = spec["image_shape"]
        return SmallCNN(spec["n_inputs"], spec["n_outputs"], (h, w), spec["dropout"])
    return MLP(spec["n_inputs"], spec["n_outputs"], list(spec["hidden_layers"]), spec["dropout"])
