#!/usr/bin/env bash
# Train a config inside a fixed time box on a borrowed CUDA machine that has PyTorch but not our
# audio packages, and copy the result to $OUT. Expects, in the work tree:
#   .whl/     wheels of soundfile, cffi, pycparser, soxr, pystoi for the machine's Python
#   .gpudata/corpus   a slice made by `hushlab corpus subset .gpudata/corpus ...`, or
#   .gpudata/pack*.tar  that slice cut into tar files sent over several calls (one call's
#                       transfer is capped; a warm machine keeps what earlier calls brought),
#                       unpacked here; HUSHLAB_PACKS=N makes the run stop unless N are there
# Usage: scripts/gpu_train.sh train|train-teacher CONFIG [KEY=VALUE ...]
set -u
command=$1
config=$2
shift 2
out=${OUT:-/tmp/hushlab-gpu-out}
mkdir -p "$out"
packs=$(ls .gpudata/pack*.tar 2>/dev/null | wc -l)
if [ -n "${HUSHLAB_PACKS:-}" ] && [ "$packs" -ne "$HUSHLAB_PACKS" ]; then
    echo "found $packs of $HUSHLAB_PACKS data packs: the machine was not kept warm"; exit 3
fi
for p in .gpudata/pack*.tar; do [ -f "$p" ] && tar -xf "$p" -C .gpudata; done
[ -n "${HUSHLAB_SKIP_WHEELS:-}" ] || python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
mount -o remount,size=32G /dev/shm 2>/dev/null || true
{ nvidia-smi --query-gpu=name,memory.total --format=csv,noheader; df -h /dev/shm | tail -1;
  python3 -c "import torch; print('torch', torch.__version__, torch.cuda.is_available())"; } \
    | tee /tmp/machine.txt
run=/tmp/hushlab-run
if [ "$command" = train ]; then corpus=data.corpus=.gpudata/corpus; else corpus=corpus=.gpudata/corpus; fi
python3 -m app.cli "$command" --config "$config" $corpus out=$run "$@" >"$out/train.log" 2>&1
rc=$?
if [ "$command" = train ] && [ $rc -ne 0 ] && [ ! -f $run/best.safetensors ]; then
    # Most likely the data loader's shared memory: go on in-process, resuming from last.pt.
    echo "first attempt failed ($rc); again with num_workers=0"
    tail -20 "$out/train.log"
    python3 -m app.cli "$command" --config "$config" $corpus out=$run "$@" \
        num_workers=0 >"$out/train2.log" 2>&1
    rc=$?
fi
for f in best.safetensors latest.safetensors history.jsonl train_log.csv config.json \
    pretraining.png; do
    [ -f $run/$f ] && cp $run/$f "$out/"
done
if [ -d $run/teacher ]; then  # the statistics are recomputed over the whole corpus at home
    mkdir -p "$out/teacher"
    cp $run/teacher/config.json $run/teacher/model.safetensors \
        $run/teacher/preprocessor_config.json "$out/teacher/"
fi
tail -30 "$out/train.log"
tail -5 $run/train_log.csv 2>/dev/null
cat $run/history.jsonl 2>/dev/null
exit $rc
