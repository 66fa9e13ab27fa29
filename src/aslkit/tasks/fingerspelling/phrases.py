"""The batches and score every fingerspelling objective shares (CTC, attention decoders, pretraining): packed raw
landmarks featurized on the device, character ids, the hand frames that decide the fallback phrase, Kaggle's
normalised total Levenshtein score and the OOF file."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from aslkit.runs import write_csv_atomic
from aslkit.tasks.fingerspelling.evaluate import fs_score
from aslkit.tensor_ops import batch_features, pack_landmarks


class PhraseObjective:
    """Phrases of fingerspelling sequences. Targets are ``(character ids, hand frames)``; a sample with fewer than
    ``min_hand_frames`` frames showing a hand is predicted as ``fallback`` (as the exported graph does)."""

    score_key = "val_score"
    train_stat = None

    def __init__(self, fallback: str = "", min_hand_frames: int = 0, features: nn.Module | None = None):
        self.fallback, self.min_hand_frames = fallback, min_hand_frames
        self.features = features          # the family's feature module, run on whole batches by ``featurize``

    def collate(self, batch: list) -> tuple[tuple, tuple, torch.Tensor]:
        """Raw samples -> (packed landmarks, lengths, hand frames), (character ids, their lengths), rows."""
        seqs, targets, idx = zip(*batch)
        x, lengths = pack_landmarks(seqs)
        ids = [torch.as_tensor(t[0], dtype=torch.long) for t in targets]
        hands = torch.as_tensor([t[1] for t in targets])
        return (x, lengths, hands), (torch.cat(ids), torch.as_tensor([len(i) for i in ids])), torch.as_tensor(idx)

    def featurize(self, raw: tuple) -> tuple:
        """The model's inputs of a collated batch, on the device it lies on: per-frame features ``[B, T, F]`` (zero
        after each length), the frame mask ``[B, T]`` and the hand frames."""
        x, lengths, hands = raw
        feats = batch_features(self.features, x, lengths)
        mask = torch.arange(feats.shape[1], device=feats.device)[None, :] < lengths[:, None]
        return feats, mask, hands

    def hits(self, outputs: tuple, targets: tuple, inputs: tuple) -> int:
        return 0

    def metrics(self, preds: list, idx: np.ndarray, index: pd.DataFrame, loss_sum: float) -> dict[str, float]:
        """Mean CTC loss and the normalised total Levenshtein score of the validation phrases."""
        if not len(idx):
            return {"val_loss": float("nan"), "val_score": float("nan")}
        return {"val_loss": loss_sum / len(idx), "val_score": fs_score(index["phrase"].to_numpy()[idx], preds)}

    def save_oof(self, run: Path, preds: list, idx: np.ndarray, index: pd.DataFrame) -> None:
        """``oof.csv``: sequence_id, participant_id, fold, phrase, pred, length (frames)."""
        rows = index.iloc[idx][["sequence_id", "participant_id", "fold", "phrase", "length"]].reset_index(drop=True)
        rows.insert(4, "pred", preds)
        write_csv_atomic(rows, run / "oof.csv", index=False)
