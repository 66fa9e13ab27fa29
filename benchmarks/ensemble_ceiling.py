"""How far ensembling a set of finished asl-signs runs can go on their validation fold: each member's OOF accuracy,
the one-file ensemble's weights fitted on the whole fold (what ``aslkit convert`` does, so an optimistic figure),
the same weights fitted on half of the held-out participants and scored on the other half (both ways, an honest
figure), and the share of sequences that at least one member gets right (no weighting of these members can pass it).
Every run must be validated on the same sequences (same fold of the same prepared data)."""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from aslkit.tasks.signs.ensemble import accuracy, aligned_oof, cross_fitted_accuracy, fit_weights, weighted_logits


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("runs", nargs="+", help="finished run folders (oof.csv + oof_logits.npy), two or more")
    args = ap.parse_args()
    if len(args.runs) < 2:
        raise SystemExit("ensemble_ceiling: give two or more run folders")
    try:
        rows, logits = aligned_oof(args.runs)
    except (FileNotFoundError, ValueError) as err:
        raise SystemExit(f"ensemble_ceiling: {err}") from None
    labels, participants = rows["label"].to_numpy(), rows["participant_id"].to_numpy()
    for run, z in zip(args.runs, logits):
        print(f"member  {accuracy(z, labels):.3f}  {run}")
    w = fit_weights(logits, labels)
    print("weights fitted on the whole fold: " + ", ".join(f"{x:.2f} {Path(r).name}" for x, r in zip(w, args.runs)))
    print(f"ensemble, weights fitted on the fold it is scored on: {accuracy(weighted_logits(logits, w), labels):.3f}")
    print(f"ensemble, weights fitted on the other half of the participants: "
          f"{cross_fitted_accuracy(logits, labels, participants):.3f}")
    any_right = np.any(np.stack([z.argmax(1) == labels for z in logits]), axis=0).mean()
    print(f"at least one member right: {any_right:.3f}")


if __name__ == "__main__":
    main()
