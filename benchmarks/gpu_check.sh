#!/usr/bin/env bash
# The GPU checks of the speed issue, as one script for a CUDA machine (run from the repository root with the kit's
# environment, e.g. `source scripts/env.sh`; a CUDA build of torch is needed, the pinned CPU wheel will not do):
#   1. benchmarks/train_speed.py on the GPU for every asl-signs family and the fingerspelling model (batch features on
#      the device, mixed precision: bf16 where the GPU supports it, else fp16 with a gradient scaler), quick preset;
#   2. a short training of each under `torchrun --nproc_per_node=1` (DDP on one GPU, AMP on);
#   3. the fingerspelling model with LayerDrop 0.5 under DDP (skipped layers must not stop the reduction).
# Prints samples/s and each run's last metrics row; exits non-zero at the first failure.
# Usage: bash benchmarks/gpu_check.sh            (ASLKIT_ROOT: where the synthetic data, caches and runs go)
set -euo pipefail
export ASLKIT_ROOT="${ASLKIT_ROOT:-$(mktemp -d /tmp/aslkit_gpu_check.XXXX)}"
export ASLKIT_SYNTH_SIZE=quick
python -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; \
print(torch.__version__, torch.cuda.get_device_name(0), 'bf16' if torch.cuda.is_bf16_supported() else 'fp16')"
echo "root: $ASLKIT_ROOT"

FAMILIES=(transformer cnn frames25 conv1d)
for fam in "${FAMILIES[@]}"; do
  python benchmarks/train_speed.py --preset quick --model-name "$fam" --device cuda --workers -1 2>/dev/null | tail -8
done
python benchmarks/train_speed.py --task asl-fingerspelling --preset quick --device cuda --workers -1 2>/dev/null | tail -8

ddp() {  # ddp <run name> <overrides...>: one epoch-limited DDP run on one GPU, then its last metrics row
  local name="$1"; shift
  torchrun --standalone --nproc_per_node=1 -m aslkit train --overwrite --preset quick device=cuda workers=-1 \
    "run_name=gpu_check/$name" "$@" > "$ASLKIT_ROOT/$name.log" 2>&1 \
    || { tail -20 "$ASLKIT_ROOT/$name.log"; exit 1; }
  echo "$name: $(head -1 "$ASLKIT_ROOT/logs/gpu_check/$name/metrics.csv")"
  echo "$name: $(tail -1 "$ASLKIT_ROOT/logs/gpu_check/$name/metrics.csv")"
}
for fam in "${FAMILIES[@]}"; do
  ddp "ddp_$fam" "model_name=$fam" optim.epochs=2
done
ddp ddp_fs task=asl-fingerspelling optim.epochs=2
ddp ddp_fs_layerdrop task=asl-fingerspelling model.layers=4 model.layerdrop=0.5 optim.epochs=3
echo "gpu_check: all passed"
