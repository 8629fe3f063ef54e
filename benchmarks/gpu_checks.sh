#!/usr/bin/env bash
# Every check that needs a CUDA GPU, in one go, for a short lease on a GPU machine:
#   bash benchmarks/gpu_checks.sh [OUTDIR] [STEPS]
# STEPS: any of env,warmup,tests,conv,perception,breakdown,eager (comma-separated; default all but
# breakdown, the per-kernel timing of benchmarks.gpu_conv --breakdown, and eager, where the detector's eager
# forward spends its host time: benchmarks.gpu_eager_profile).
# The GPU image has no pydicom (the DICOM test needs it): carry its wheel as the device README says.
# Each step has its own time limit so that one hang cannot eat the others; logs and JSON land in
# OUTDIR (default: gpu-checks/): env.txt, warmup.log, tests.log, gpu_conv.json, gpu_conv.log,
# perception_gpu.json, breakdown.json, eager_profile.txt.
set -u
out=${1:-gpu-checks}
steps=${2:-env,warmup,tests,conv,perception}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
py=${PYTHON:-python3}
has() { [[ ",$steps," == *",$1,"* ]]; }
stamp() { echo "== $1 ($(date +%T))"; }

if has env; then
  stamp env
  { nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv
    $py -c "import cupy, numpy, torch; print('cupy', cupy.__version__, 'numpy', numpy.__version__,
'torch', torch.__version__, 'cudnn', torch.backends.cudnn.version())"; } 2>&1 | tee "$out/env.txt"
fi
if has warmup; then
  stamp warmup
  timeout 100 $py -m framework.kernels.cuda.warmup --jobs "$(nproc)" >"$out/warmup.log" 2>&1
  echo "warmup rc=$?"; tail -c 3000 "$out/warmup.log"
fi
if has tests; then
  stamp tests
  CUDA_LAUNCH_BLOCKING=1 timeout 150 $py -m pytest -p no:cacheprovider tests/framework/test_cuda_gpu.py \
    -n 8 --timeout 100 --tb=short -rfE >"$out/tests.log" 2>&1
  echo "tests rc=$?"; grep -E "^(FAILED|ERROR)|passed|failed" "$out/tests.log" | tail -60
fi
if has conv; then
  stamp conv
  timeout 150 $py -m benchmarks.gpu_conv --reps 20 --out "$out/gpu_conv.json" >/dev/null 2>"$out/gpu_conv.log"
  echo "gpu_conv rc=$?"; tail -c 1500 "$out/gpu_conv.log"
  $py - "$out/gpu_conv.json" <<'EOF' 2>/dev/null
import json, sys
d = json.load(open(sys.argv[1]))
for r in d["results"]:
    print(r["precision"], r["shape"], "fwd %.3f/%.3f ms x%.2f  fb %.3f/%.3f ms x%.2f" % (
        r["ours_fwd_ms"], r.get("cudnn_fwd_ms", 0), r.get("speedup_fwd", 0),
        r["ours_fwd_bwd_ms"], r.get("cudnn_fwd_bwd_ms", 0), r.get("speedup_fwd_bwd", 0)))
print(json.dumps(d["summary"]), json.dumps(d.get("models")))
EOF
fi
if has breakdown; then
  stamp breakdown
  timeout 150 $py -m benchmarks.gpu_conv --breakdown --out "$out/breakdown.json" >/dev/null 2>"$out/breakdown.log"
  echo "breakdown rc=$?"
  $py - "$out/breakdown.json" <<'EOF' 2>/dev/null
import json, sys
for r in json.load(open(sys.argv[1]))["rows"]:
    print(r["precision"], r["shape"], " ".join("%s %.3f/%.3f" % (m, r[m + "_call_cpu_ms"], r[m + "_call_gpu_ms"])
                                                for m in ("fwd", "bwd_data", "bwd_filter")),
          " kern", " ".join("%.3f(%.0fT)" % (r.get(f"mode{i}_kernel_ms", -1), r.get(f"mode{i}_tflops", -1))
                            for i in range(3)))
EOF
fi
if has perception; then
  stamp perception
  timeout 60 $py -m benchmarks.perception_gpu --out "$out/perception_gpu.json" >/dev/null 2>"$out/perception_gpu.log"
  echo "perception_gpu rc=$?"; tail -c 1500 "$out/perception_gpu.log"
fi
if has eager; then
  stamp eager
  timeout 90 $py -m benchmarks.gpu_eager_profile --frames 100 >"$out/eager_profile.txt" 2>&1
  echo "gpu_eager_profile rc=$?"; head -c 4000 "$out/eager_profile.txt"
fi
stamp done
