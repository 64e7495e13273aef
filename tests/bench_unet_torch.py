"""PyTorch training the segmentation U-Net of tests/bench_unet.c the same way, for its
comparison (make bench): nnU-Net's PlainConvUNet without deep supervision (5 stages of
16..256 channels, two 3x3x3 conv + instance norm (no affine, as libcsal3d's) + LeakyReLU
0.01 per stage, strided convs down, transposed convs up, concatenation, 1x1x1 head),
batch 4 of 48x64x48, 3 classes, CE + batch soft Dice over the foreground (smooth 1e-5),
AdamW (weight decay on conv weights) with gradient clipping at 12, poly learning rate.

Prints "torch FORMAT SECONDS" per memory format tried (seconds per iteration, the mean
over the timed iterations after warm-up): ncdhw (the default) and channels_last_3d.
Usage: bench_unet_torch.py --threads T --iterations N --warmup K
"""

import argparse
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

B, D, H, W, CLASSES = 4, 48, 64, 48, 3
WIDTHS = (16, 32, 64, 128, 256)


def block(cin, cout, stride):
    return [nn.Conv3d(cin, cout, 3, stride, 1, bias=True), nn.InstanceNorm3d(cout, eps=1e-5),
            nn.LeakyReLU(0.01, inplace=True)]


class UNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.enc = nn.ModuleList()
        cin = 1
        for s, w in enumerate(WIDTHS):
            self.enc.append(nn.Sequential(*block(cin, w, 1 if s == 0 else 2), *block(w, w, 1)))
            cin = w
        self.up = nn.ModuleList()
        self.dec = nn.ModuleList()
        for s in range(len(WIDTHS) - 2, -1, -1):
            w = WIDTHS[s]
            self.up.append(nn.ConvTranspose3d(WIDTHS[s + 1], w, 2, 2, bias=True))
            self.dec.append(nn.Sequential(*block(2 * w, w, 1), *block(w, w, 1)))
        self.head = nn.Conv3d(WIDTHS[0], CLASSES, 1, bias=True)
        for m in self.modules():  # nnU-Net's InitWeights_He(1e-2)
            if isinstance(m, (nn.Conv3d, nn.ConvTranspose3d)):
                nn.init.kaiming_normal_(m.weight, a=1e-2)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        skips = []
        for e in self.enc:
            x = e(x)
            skips.append(x)
        x = skips.pop()
        for up, dec in zip(self.up, self.dec):
            x = dec(torch.cat([up(x), skips.pop()], 1))
        return self.head(x)


def loss_fn(logits, y):
    ce = F.cross_entropy(logits, y)
    p = torch.softmax(logits, 1)
    onehot = F.one_hot(y, CLASSES).permute(0, 4, 1, 2, 3).to(p.dtype)
    dims = (0, 2, 3, 4)  # nnU-Net's batch Dice
    tp = (p * onehot).sum(dims)[1:]
    fp = (p * (1 - onehot)).sum(dims)[1:]
    fn = ((1 - p) * onehot).sum(dims)[1:]
    dice = (2 * tp + 1e-5) / (2 * tp + fp + fn + 1e-5).clamp_min(1e-8)
    return ce + (1 - dice.mean())


def batch():
    z, q, w = torch.meshgrid(torch.arange(D), torch.arange(H), torch.arange(W), indexing="ij")
    xs, ys = [], []
    for b in range(B):
        dz, dq, dw = (z - D / 2) / 8, (q - H / 2 - 4 * b) / 14, (w - W / 2) / 9
        inside = dz * dz + dq * dq + dw * dw < 1
        y = torch.where(inside, torch.where(dq < 0, 1, 2), 0)
        x = y * 0.8 + 0.3 * torch.sin(0.37 * z + 0.11 * q * w) + 0.2 * torch.rand(D, H, W)
        xs.append(x.float())
        ys.append(y.long())
    return torch.stack(xs)[:, None], torch.stack(ys)


def run(fmt, iters, warmup):
    torch.manual_seed(1)
    net = UNet()
    x, y = batch()
    if fmt == "channels_last_3d":
        net = net.to(memory_format=torch.channels_last_3d)
        x = x.contiguous(memory_format=torch.channels_last_3d)
    decay = [p for n, p in net.named_parameters() if n.endswith("weight")]
    other = [p for n, p in net.named_parameters() if not n.endswith("weight")]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 3e-5},
                             {"params": other, "weight_decay": 0.0}], lr=1e-2)
    total = warmup + iters
    t0 = None
    for it in range(total):
        if it == warmup:
            t0 = time.perf_counter()
        for g in opt.param_groups:
            g["lr"] = 1e-2 * (1 - it / total) ** 0.9
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(net(x), y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 12.0)
        opt.step()
    return (time.perf_counter() - t0) / iters, loss.item()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--iterations", type=int, default=24)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--formats", default="ncdhw,channels_last_3d")
    a = ap.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    for fmt in a.formats.split(","):
        sec, loss = run(fmt, a.iterations, a.warmup)
        assert math.isfinite(loss), loss
        print(f"torch {fmt} {sec:.4f}", flush=True)


if __name__ == "__main__":
    main()
