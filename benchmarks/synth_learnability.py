"""Prints how learnable the synthetic asl-signs data is for a crude baseline (ridge on hand/lip positions),
on signers the baseline never saw."""
from __future__ import annotations

import argparse

from aslkit.synth.stats import baseline_accuracy


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--signs", type=int, default=50)
    ap.add_argument("--signers", type=int, default=10)
    ap.add_argument("--per-sign", type=int, default=3)
    args = ap.parse_args()
    res = baseline_accuracy(args.signs, args.signers, args.per_sign)
    for k, v in res.items():
        print(f"{k:26s} {v:.3f}" if isinstance(v, float) else f"{k:26s} {v}")


if __name__ == "__main__":
    main()
