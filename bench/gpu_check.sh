#!/usr/bin/env bash
# GPU check: in at most nine minutes, what only a GPU shows (bench/gpu_check.py has the details):
# NVML samples during a real run, a bf16 LoRA and a 4-bit QLoRA run through the detached runner,
# the memory estimate against measured peaks, eval generation throughput, and the training speed
# of the workbench's defaults against plain TRL (bench/train_overhead.py's three ratios).
#
#   bash bench/gpu_wheels.sh          # once, where pip reaches PyPI: .whl/ (wheels + model skeleton)
#   bash bench/gpu_check.sh           # on the GPU machine; figures in $OUT/gpu_check.json when OUT is set
#   bash bench/gpu_check.sh --cpu-smoke   # self-test of the script on a CPU (tiny sizes, not a measurement)
#
# Without a GPU it says so and exits 0. Exit 1 when a part failed. Any other arguments go to
# bench/gpu_check.py (--parts lora,eval, --model PATH, --out DIR, ...).
# Environment: PYTHON (default: the repo's .venv, else python3), GPU_CHECK_SECONDS (all of it,
# wheel install included; default 540), GPU_CHECK_KEEP=1 keeps the temporary workspace.
set -u

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root" || exit 2
start=$(date +%s)

if [ -n "${PYTHON:-}" ]; then
    py="$PYTHON"
elif [ -x "$root/.venv/bin/python" ]; then
    py="$root/.venv/bin/python"
else
    py="$(command -v python3 || command -v python || true)"
fi
if [ -z "$py" ]; then
    echo "gpu_check: no python3 found"
    exit 2
fi

smoke=0
for arg in "$@"; do
    [ "$arg" = "--cpu-smoke" ] && smoke=1
done

export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1
export TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"

# No GPU and no self-test: say so (NVML, then nvidia-smi) and exit 0, before anything is
# installed or any workspace is made.
if [ "$smoke" = 0 ]; then
    "$py" "$root/bench/gpu_check.py" --detect
    case $? in
        0) ;;
        3) exit 0 ;;
        *) echo "gpu_check: could not look for a GPU with $py"; exit 2 ;;
    esac
fi

# The carried wheels (bench/gpu_wheels.sh): only into a Python 3.12 (what they were fetched for),
# and only those this python lacks or has older (never torch: the machine's CUDA build is used).
if ls "$root"/.whl/*.whl >/dev/null 2>&1; then
    pyver="$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
    if [ "$pyver" = "3.12" ]; then
        site="${GPU_CHECK_SITE:-/tmp/site}"
        "$py" "$root/bench/gpu_check.py" --install-wheels "$root/.whl" --target "$site" || {
            echo "gpu_check: installing the wheels from .whl/ failed"
            exit 1
        }
        export PYTHONPATH="$site:$PYTHONPATH"
    else
        echo "gpu_check: not installing .whl/ (wheels for Python 3.12; $py is $pyver)"
    fi
fi
if ! ls "$root"/.whl/bitsandbytes-*.whl >/dev/null 2>&1 && ! "$py" -c 'import importlib.util as u, sys; sys.exit(u.find_spec("bitsandbytes") is None)'; then
    echo "gpu_check: no bitsandbytes (not installed, no wheel in .whl/): the QLoRA parts will report 'skipped'"
fi

ws="$(mktemp -d "${TMPDIR:-/tmp}/gpu-check.XXXXXX")"
if [ "${GPU_CHECK_KEEP:-0}" != 1 ]; then
    trap 'rm -rf "$ws"' EXIT
fi

total="${GPU_CHECK_SECONDS:-540}"
[ "$smoke" = 1 ] && total="${GPU_CHECK_SECONDS:-2200}"
left=$((total - ($(date +%s) - start) - 15))
# The Python side keeps to --deadline (each part has its own budget inside it); the timeout is a backstop.
timeout --signal=TERM --kill-after=10 $((left + 10)) "$py" "$root/bench/gpu_check.py" --workspace "$ws" --deadline "$left" "$@"
rc=$?
[ "$rc" = 124 ] && echo "gpu_check: stopped by the ${total} s backstop"
exit "$rc"
