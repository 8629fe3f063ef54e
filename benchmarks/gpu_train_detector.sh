#!/usr/bin/env bash
# Fine-tune the committed detector on a GPU machine within a short lease, and measure its training rate:
#   OUT=DIR bash benchmarks/gpu_train_detector.sh
# Frames are rendered there (SHARDS processes of PER frames, seeds 5000..; a validation set of VALN
# frames, seed 1002), merged into one cache, and the committed weights are fine-tuned on CUDA with our
# kernels, the cosine following a budget that ends TOTAL_S seconds after the start. The run folder
# (weights, card, log) lands in $OUT/run, the progress in $OUT/train.err.
# Env: SHARDS, PER, VALN, BATCH, DEVICE (cuda|cpu), TOTAL_S, WORKERS, STEPS, EVERY.
set -u
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
py=${PYTHON:-python3}
OUT=${OUT:?set OUT to an output folder}
mkdir -p "$OUT"
SHARDS=${SHARDS:-12}; PER=${PER:-1000}; VALN=${VALN:-300}; BATCH=${BATCH:-32}; DEVICE=${DEVICE:-cuda}
TOTAL_S=${TOTAL_S:-540}; WORKERS=${WORKERS:-12}; STEPS=${STEPS:-100000}; EVERY=${EVERY:-1500}
D=/dev/shm/pdata; [ -w /dev/shm ] || D=/tmp/pdata
rm -rf "$D"; mkdir -p "$D"
T0=$(date +%s)
el() { echo $(( $(date +%s) - T0 )); }
if [ "$DEVICE" = cuda ]; then
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
  timeout 120 $py -m framework.kernels.cuda.warmup --jobs 4 > "$OUT/warmup.log" 2>&1 &
fi
for i in $(seq 0 $((SHARDS - 1))); do
  $py -m apps.perception cache --out "$D/s$i" --n "$PER" --seed $((5000 + i)) --size 480 > /dev/null 2>&1 &
done
$py -m apps.perception cache --out "$D/val" --n "$VALN" --seed 1002 --size 480 > /dev/null 2>&1 &
wait
echo "rendered after $(el) s"
$py -c "import sys; from apps.perception.data import merge_caches
print(merge_caches(sys.argv[1] + '/train', [f'{sys.argv[1]}/s{i}' for i in range(int(sys.argv[2]))]))" \
  "$D" "$SHARDS" || exit 1
echo "merged after $(el) s"
left=$(( TOTAL_S - $(el) - 45 ))
budget=$($py -c "print(round($left / 60, 2))")
echo "training for $budget min"
$py -m apps.perception train --data "$D/train" --val "$D/val" --out "$OUT/run" --size 480 --crop 256 \
  --steps "$STEPS" --time-budget "$budget" --batch "$BATCH" --lr 2e-4 --mosaic 0.3 --seed 3 --eval-every "$EVERY" \
  --val-images "$VALN" --init apps/perception/assets/detector.safetensors --giou 2.0 --width 1.5 \
  --device "$DEVICE" --workers "$WORKERS" 2> "$OUT/train.err" | tail -c 600
echo "rc=$? after $(el) s"
rm -f "$OUT/run/last.safetensors"  # (optimizer state: not needed back)
grep -a "eval" "$OUT/run/log.jsonl" | tail -8
tr '\r' '\n' < "$OUT/train.err" | grep -a -v "^$" | tail -4
