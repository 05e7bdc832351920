# PyTorch side of bench/core_bench.lua: TransformerEncoderLayer(256, 4, ff 2048,
# post-norm, relu, dropout 0.1, batch_first) forward + backward at B=64, L=197.
import sys, time
import torch

threads = int(sys.argv[1]) if len(sys.argv) > 1 else 2
torch.set_num_threads(threads)
torch.manual_seed(0)
layer = torch.nn.TransformerEncoderLayer(256, 4, 2048, 0.1, batch_first=True)
layer.train()
x = torch.randn(64, 197, 256, requires_grad=True)
g = torch.randn(64, 197, 256)

def step():
    y = layer(x)
    y.backward(g)
    layer.zero_grad(set_to_none=True)
    x.grad = None

step()
ts = []
for _ in range(int(sys.argv[2]) if len(sys.argv) > 2 else 5):
    t0 = time.perf_counter()
    step()
    ts.append(time.perf_counter() - t0)
ts.sort()
print("torch_layer_fwd_bwd_seconds: %.6f" % ts[len(ts) // 2])
