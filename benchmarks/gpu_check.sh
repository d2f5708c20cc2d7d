#!/usr/bin/env bash
# GPU figures of issue 24 in one run of at most ~10 minutes; every result goes under $OUT.
#
#   OUT=/some/dir benchmarks/gpu_check.sh            # on a machine with a GPU
#   OUT=/tmp/gpu_dry benchmarks/gpu_check.sh --dry-run   # tiny sizes on the CPU (checks the script)
#
# Sections, most important first, each under its own time limit (a section that runs out is
# logged and skipped, the next one runs):
#   1. run.py --task speed at 10^5 cells (RNA+ATAC), MosaicVI and MULTIVI in the same run, one
#      full timed epoch after 30 warm-up steps (cells/s bars: >= 100,000 and >= 10x MULTIVI).
#   2. 10^6 cells x 3 modalities, MosaicVI: 300 timed steps after 30 warm-up steps (seconds per
#      epoch extrapolated from the timed steps; peak host RSS above the imports / sparse input).
#   3. 10^6 cells RNA+ATAC, MosaicVI and MULTIVI, 300 timed steps each.
#   4. Batch-size sweep at 10^5 (MosaicVI, 512 and 2048; learning rate unchanged): speed only.
#      The default stays 128 on every device: on the SNARE-seq mosaic at equal epochs, 512 and
#      1024 (lr scaled by sqrt) lowered the scib total (results/snareseq_mosaic_batch_size.md).
#   5. Per-step split (forward / backward / update / rest) at 10^5, device-resident data on and
#      off (benchmarks/profile_host.py; on a GPU it synchronises around each part, so compare
#      the two rows with each other only), and the two loaders alone (ms per minibatch).
# Results: $OUT/speed_<device>*.md/.csv/.png (the device is named in them), $OUT/profile.jsonl,
# $OUT/log.txt, $OUT/device.txt. Commit speed_<device>.md/.csv as benchmarks/results/.
set -uo pipefail
cd "$(dirname "$0")"
OUT=${OUT:?set OUT to the result folder}
PY=${PYTHON:-python}
mkdir -p "$OUT"
LOG="$OUT/log.txt"
if [[ "${1:-}" == "--dry-run" ]]; then
    SMALL=2000 LARGE=4000 ACC=cpu STEPS=10 WARM=5 LIMIT=120 DATA=/tmp/gpu_check_data_dry
else
    SMALL=100000 LARGE=1000000 ACC=gpu STEPS=300 WARM=30 LIMIT=0 DATA=/tmp/gpu_check_data
fi
START=$(date +%s)
TOTAL=${TOTAL:-560} # seconds for everything (the device tool allows 600 per command)
# section NAME SECONDS COMMAND...: run COMMAND under a time limit, log its output.
section() {
    local name=$1 seconds=$2
    shift 2
    [[ $LIMIT -gt 0 ]] && seconds=$LIMIT
    local left=$((TOTAL - ($(date +%s) - START)))
    ((seconds > left)) && seconds=$left
    if ((seconds < 10)); then
        echo "=== $name: skipped, the ${TOTAL}s budget is spent" | tee -a "$LOG"
        return
    fi
    echo "=== $name (limit ${seconds}s, $(($(date +%s) - START))s elapsed)" | tee -a "$LOG"
    timeout "$seconds" "$@" >>"$LOG" 2>&1
    echo "=== $name: exit $? after $(($(date +%s) - START))s" | tee -a "$LOG"
}
{ nvidia-smi -L 2>/dev/null || echo "no nvidia-smi"; nproc; free -g; } >"$OUT/device.txt"
"$PY" -c "import torch, scvi, mosaicvi; print(torch.__version__, scvi.__version__, mosaicvi.__file__, torch.cuda.is_available())" >>"$OUT/device.txt" 2>&1
SPEED=("$PY" run.py --task speed --accelerator "$ACC" --data-dir "$DATA" --out "$OUT")
# Per-child limits (--timeout) below the section's, so that a slow child is dropped and the
# rows of the others are still written.
section "10^5 RNA+ATAC: MosaicVI and MULTIVI" 180 \
    "${SPEED[@]}" --cells "$SMALL" --models mosaicvi,multivi --epochs 1 --warmup-steps "$WARM" \
    --timeout 80
section "10^6 x 3 modalities: MosaicVI" 160 \
    "${SPEED[@]}" --cells "$LARGE" --models mosaicvi-3mod --epochs 1 --warmup-steps "$WARM" \
    --max-steps "$STEPS"
section "10^6 RNA+ATAC: MosaicVI and MULTIVI" 130 \
    "${SPEED[@]}" --cells "$LARGE" --models mosaicvi,multivi --epochs 1 --warmup-steps "$WARM" \
    --max-steps "$STEPS" --timeout 120
for bs in 512 2048; do
    section "10^5 batch size $bs" 25 \
        "${SPEED[@]}" --cells "$SMALL" --models mosaicvi --epochs 1 --warmup-steps "$WARM" \
        --batch-size "$bs" --tag "_bs$bs"
done
H5MU="$DATA/synthetic_rna-atac_${SMALL}_seed0.h5mu"
for resident in true false; do
    section "profile, resident=$resident" 30 \
        "$PY" profile_host.py --data "$H5MU" --accelerator "$ACC" --warmup-steps "$WARM" \
        --steps "$STEPS" --load-data-on-device "$resident" --label "resident=$resident" \
        --json "$OUT/profile.jsonl"
done
section "loaders alone (minibatches/s, no training)" 30 \
    "$PY" profile_host.py --data "$H5MU" --accelerator "$ACC" --steps "$STEPS" --loader-only \
    --label loaders --json "$OUT/profile.jsonl"
echo "done after $(($(date +%s) - START))s" | tee -a "$LOG"
