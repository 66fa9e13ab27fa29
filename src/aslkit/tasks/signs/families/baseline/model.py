"""The non-deep reference's classifier: a scikit-learn multinomial logistic regression on standardised
``SummaryFeatures``, held as a torch module (standardisation buffers + one linear layer) so that validation, the
run folder and the TFLite export treat it like every other family."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

ABSENT_LOGIT = -30.0      # bias of a class with no training recording (never predicted; finite in float16)


@dataclass
class LogisticConfig:
    """Settings of ``SummaryLogistic``: scikit-learn ``LogisticRegression``'s inverse regularisation ``C`` and its
    iteration limit."""

    c: float = 0.05
    max_iter: int = 500
    num_classes: int = 250


class SummaryLogistic(nn.Module):
    """``[B, F]`` summary features -> ``[B, num_classes]`` logits of a logistic regression fitted by ``fit``."""

    closed_form = True        # trained by ``fit`` on every training sample at once, not by gradient steps

    def __init__(self, cfg: LogisticConfig, feature_dim: int):
        super().__init__()
        if cfg.c <= 0 or cfg.max_iter < 1:
            raise ValueError(f"model.c must be > 0 and model.max_iter >= 1, got {cfg.c}, {cfg.max_iter}")
        self.cfg = cfg
        self.register_buffer("mean", torch.zeros(feature_dim))
        self.register_buffer("scale", torch.ones(feature_dim))
        self.head = nn.Linear(feature_dim, cfg.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head((x - self.mean) / self.scale)

    def fit(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        """Fit the standardisation and the regression on features ``x`` ``[N, F]`` and labels ``y`` ``[N]``; returns
        the training log loss and accuracy."""
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import StandardScaler

        features, labels = x.detach().cpu().double().numpy(), y.detach().cpu().numpy()
        scaler = StandardScaler().fit(features)
        reg = LogisticRegression(C=self.cfg.c, max_iter=self.cfg.max_iter).fit(scaler.transform(features), labels)
        weight = np.zeros((self.cfg.num_classes, features.shape[1]))
        bias = np.full(self.cfg.num_classes, ABSENT_LOGIT)
        weight[reg.classes_], bias[reg.classes_] = reg.coef_, reg.intercept_
        with torch.no_grad():
            self.mean.copy_(torch.as_tensor(scaler.mean_))
            self.scale.copy_(torch.as_tensor(scaler.scale_))
            self.head.weight.copy_(torch.as_tensor(weight))
            self.head.bias.copy_(torch.as_tensor(bias))
            logits = self(x.float())
        return {"train_loss": float(nn.functional.cross_entropy(logits, y)),
                "train_acc": float((logits.argmax(1) == y).float().mean())}
