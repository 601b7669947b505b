#!/usr/bin/env bash
# Train one or more configs side by side inside a fixed time box on a borrowed CUDA machine that
# has PyTorch but not our audio packages, and copy the results to $OUT. Expects, in the work tree:
#   .whl/     wheels of soundfile, cffi, pycparser, soxr, pystoi for the machine's Python
#   .gpudata/corpus   a slice made by `hushlab corpus subset .gpudata/corpus ...`, or
#   .gpudata/pack*.tar  that slice cut into tar files sent over several calls (one call's
#                       transfer is capped; a warm machine keeps what earlier calls brought),
#                       unpacked here; HUSHLAB_PACKS=N makes the run stop unless N are there
#   .gpudata/restore/   optional: files at their paths in the repository (shipped weights,
#                       teachers) that were left out of the transfer to keep it small; copied
#                       back over the tree first (scripts/gpu_pack.py --restore PATH)
# Usage: scripts/gpu_train.sh train|train-teacher CONFIG [CONFIG ...] [KEY=VALUE ...]
# Each run's best and latest weights and a tar of its logs come back as $OUT/<run>.*
# (the device tool returns at most 8 files).
set -u
command=$1
shift
configs=()
while [ $# -gt 0 ] && [ "${1#*=}" = "$1" ]; do configs+=("$1"); shift; done
out=${OUT:-/tmp/hushlab-gpu-out}
mkdir -p "$out"
packs=$(ls .gpudata/pack*.tar 2>/dev/null | wc -l)
if [ -n "${HUSHLAB_PACKS:-}" ] && [ "$packs" -ne "$HUSHLAB_PACKS" ]; then
    echo "found $packs of $HUSHLAB_PACKS data packs: the machine was not kept warm"; exit 3
fi
for p in .gpudata/pack*.tar; do [ -f "$p" ] && tar -xf "$p" -C .gpudata; done
[ -d .gpudata/restore ] && cp -r .gpudata/restore/. .
[ -n "${HUSHLAB_SKIP_WHEELS:-}" ] || python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
mount -o remount,size=32G /dev/shm 2>/dev/null || true
{ nvidia-smi --query-gpu=name,memory.total --format=csv,noheader; df -h /dev/shm | tail -1;
  python3 -c "import torch; print('torch', torch.__version__, torch.cuda.is_available())"; } \
    | tee /tmp/machine.txt
if [ "$command" = train ]; then corpus=data.corpus=.gpudata/corpus; else corpus=corpus=.gpudata/corpus; fi

run_one() {  # config -> trains into /tmp/hushlab-run/<name>, logs to /tmp/<name>.log
    local config=$1 name rc
    shift
    name=$(basename "$config" .toml)
    local run=/tmp/hushlab-run/$name
    python3 -m app.cli "$command" --config "$config" $corpus out=$run "$@" >"/tmp/$name.log" 2>&1
    rc=$?
    if [ "$command" = train ] && [ $rc -ne 0 ] && [ ! -f $run/best.safetensors ]; then
        # Most likely the data loader's shared memory: go on in-process, resuming from last.pt.
        echo "$name: first attempt failed ($rc); again with num_workers=0" | tee -a "/tmp/$name.log"
        python3 -m app.cli "$command" --config "$config" $corpus out=$run "$@" \
            num_workers=0 >>"/tmp/$name.log" 2>&1
        rc=$?
    fi
    echo "$name: exit $rc" >>"/tmp/$name.log"
    return $rc
}

collect() {  # every run's weights and logs -> $OUT (also what a run saved before a time limit)
    local c name run f files
    for c in "${configs[@]}"; do
        name=$(basename "$c" .toml)
        run=/tmp/hushlab-run/$name
        for f in best latest; do
            [ -f $run/$f.safetensors ] && cp $run/$f.safetensors "$out/$name.$f.safetensors"
        done
        cp /tmp/$name.log $run/train.log 2>/dev/null
        cp /tmp/machine.txt $run/ 2>/dev/null
        files=()
        for f in history.jsonl train_log.csv config.json train.log machine.txt pretraining.png; do
            [ -f $run/$f ] && files+=("$f")
        done
        [ -d $run/teacher ] && files+=(teacher/config.json teacher/model.safetensors teacher/preprocessor_config.json)
        [ ${#files[@]} -gt 0 ] && tar -cf "$out/$name.tar" -C $run "${files[@]}"
        echo "== $name"
        tail -5 /tmp/$name.log 2>/dev/null
        tail -3 $run/train_log.csv 2>/dev/null
        cat $run/history.jsonl 2>/dev/null
    done
}

pids=()
# A time limit on this script (`timeout`) ends the runs and still returns what they saved: a
# run's time box counts from its own start, not from the call's, so unpacking and start-up can
# push the whole call past the limit.
stop_runs() {  # each run's shell first (so it does not retry), then its trainer
    local p kids
    for p in "${pids[@]}"; do
        kids=$(pgrep -P "$p")
        kill "$p" 2>/dev/null
        [ -n "$kids" ] && kill $kids 2>/dev/null
    done
    sleep 2
}
trap 'echo "time limit: stopping the runs, returning what they saved"; stop_runs; collect; exit 124' TERM INT
for c in "${configs[@]}"; do run_one "$c" "$@" & pids+=($!); done
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=1; done
nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader
collect
exit $rc
