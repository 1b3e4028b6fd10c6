#!/usr/bin/env bash
# The prepared GPU run (README, "GPU"): train the four LoRA models on the device's GPU with
# their recipes (models/recipes.py), then measure the torch models' latency there and what
# fp16 changes (bench/gpu/latency.py). Before it, here (both folders in .git/info/exclude):
#   .venv/bin/python bench/gpu/pack.py
#   .venv/bin/python -m pip download -d .whl --no-deps --only-binary=:all: --python-version 3.12 \
#     --implementation cp --platform manylinux_2_17_x86_64 pydantic==2.12.5 pydantic-core==2.41.5 \
#     annotated-types==0.7.0 typing-inspection==0.4.2 orjson==3.11.5
#   .venv/bin/python -m pip wheel -w .whl --no-deps seqeval==1.2.2
# Then, through the device tool, from the repo root:
#   bash bench/gpu/device_run.sh      (carry: .devcarry, .whl)
# Everything it writes goes to $OUT: env.txt, train-<model>.log, artifacts.tgz, gpu.json.
set -uo pipefail
OUT=${OUT:-/tmp/gpu-out}
mkdir -p "$OUT"
if [ -z "${SKIP_WHEELS:-}" ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl || exit 1
fi
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 STREAMFUSE_DATA=/tmp/gpu-data
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
python3 bench/gpu/unpack.py /tmp/site /tmp/gpu-data || exit 1
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  python3 -c "import torch, transformers, peft, sklearn; print('torch', torch.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__, 'sklearn', sklearn.__version__)"
  echo "cpus $(nproc)"; command -v java || echo "java: not installed"
} > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"
models=(lora-sst2 lora-conll lora-clinc150 lora-fin)
for m in "${models[@]}"; do
  STREAMFUSE_TORCH_THREADS=3 timeout "${TRAIN_TIMEOUT_S:-400}" \
    python3 -c "import sys; from models.train import train; train(sys.argv[1])" "$m" > "$OUT/train-$m.log" 2>&1 &
done
wait
for m in "${models[@]}"; do echo "== $m"; tail -n 4 "$OUT/train-$m.log"; done
tar czf "$OUT/artifacts.tgz" models/artifacts/lora-*/
timeout "${LATENCY_TIMEOUT_S:-120}" python3 bench/gpu/latency.py > "$OUT/gpu.json"
echo "latency rc=$?"
