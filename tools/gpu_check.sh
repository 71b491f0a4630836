#!/usr/bin/env bash
# The CUDA proof, on a machine where onnxruntime-gpu sees a GPU (see docs/bench.md):
#   1. tests/test_cuda.py: CUDA features vs the CPU provider's, IO binding, analyze on CUDA;
#   2. `rtsearch bench --stages 1,2` on the default models (EfficientNet-Lite0 fp32 and int8);
#   3. the same for VGG16 fc7 exported from random full-size weights (the model's real shape
#      and cost; the weights' values don't change its speed).
# Usage: bash tools/gpu_check.sh [OUT_DIR]   (logs and JSON land in OUT_DIR, default gpu-check/)
# BENCH_ARGS adds bench options (BENCH_ARGS=--quick: a dry run of the script in a minute).
set -u
cd "$(dirname "$0")/.."
out=${1:-gpu-check}
mkdir -p "$out"
python3 -c "import onnxruntime as ort; print(ort.__version__, ort.get_available_providers())" \
    | tee "$out/providers.txt"
python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py 2>&1 | tee "$out/test_cuda.log"
python3 -m rtsearch bench --stages 1,2 ${BENCH_ARGS:-} --out "$out/bench_default.json" 2>&1 \
    | tee "$out/bench_default.log"
vgg=$(mktemp -d)
python3 - "$vgg/vgg16.pth" <<'EOF'
import sys

sys.path.insert(0, "tests")
from export_helpers import vgg_weights, write_torch_pth  # noqa: E402

sd = vgg_weights(widths=(64, 128, 256, 512, 512), fc=4096)
w, b = sd["classifier.6.weight"], sd["classifier.6.bias"]  # 10 classes -> ImageNet's 1000
sd["classifier.6.weight"] = w[:1].repeat(1000, axis=0)
sd["classifier.6.bias"] = b[:1].repeat(1000)
write_torch_pth(sys.argv[1], sd)
EOF
mkdir -p "$vgg/models"
python3 tools/export_onnx.py vgg16 --weights "$vgg/vgg16.pth" --out "$vgg/models/vgg16-fc7.onnx" \
    2>&1 | tail -2
RTSEARCH_MODELS="$vgg/models" python3 -m rtsearch bench --stages 1,2 ${BENCH_ARGS:-} \
    --model "$vgg/models/vgg16-fc7.onnx" --out "$out/bench_vgg16.json" 2>&1 \
    | tee "$out/bench_vgg16.log"
rm -rf "$vgg"
