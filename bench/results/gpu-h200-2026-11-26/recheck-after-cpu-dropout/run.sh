set -uo pipefail
B=.gpu3; PY=/opt/torch/.venv/bin/python
$PY -c "import lzma,shutil,sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2],'wb'))" $B/encoder-bench.xz $B/eb && chmod +x $B/eb
export LD_LIBRARY_PATH=$($PY -c 'import torch,os;print(os.path.join(os.path.dirname(torch.__file__),"lib"))')
nvidia-smi --query-gpu=name --format=csv,noheader
timeout 60 $B/eb check-device --model $B/minilm --data $B/wos-sample --device cuda --n 32 --max-len 128 --tol 1e-3 > $OUT/check_device.json 2> $OUT/check.log; echo "check exit $?"; cat $OUT/check_device.json
timeout 120 $B/eb bench --model $B/minilm --data $B/wos-sample --device cuda --batch-size 32 --max-len 128 --warmup 3 --train-steps 20 --eval-batches 20 --precision fp32,bf16 --json > $OUT/rust.jsonl 2> $OUT/bench.log; echo "bench exit $?"; grep samples $OUT/bench.log
