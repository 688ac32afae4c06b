"""A re-implementation of the official PyTorch PredRNN training step, for side-by-side timing.

This is not the official file (github.com/thuml/predrnn-pytorch, ``core/layers/
SpatioTemporalLSTMCell.py``, ``core/models/predrnn.py`` / ``predrnn_v2.py`` and
``core/models/model_factory.py``): it re-creates that code's *structure* from the equations of
docs/design.md, in plain ``torch.nn``:

- channels-first ``nn.Conv2d(..., bias=False)`` convs, "same" padding ``k // 2``, stride 1;
  ``conv_x`` (7n), ``conv_h`` (4n), ``conv_m`` (3n), ``conv_o`` (2n -> n), 1x1 ``conv_last``
  (2n -> n); each of conv_x/h/m/o wrapped in ``nn.Sequential`` with an optional
  ``nn.LayerNorm([C, H, W])`` (the official key names, ``cell_list.{l}.conv_x.0.weight``);
- the same per-step Python loop over ``t = 0 .. T-2``, zigzag memory, 1x1 output head
  ``conv_last`` (no bias), the frame-shaped teacher-forcing mask of the official trainer
  (``(B, T-2, C, H, W)`` after the permute), the decoupling loss with a shared 1x1 ``adapter``
  for PredRNN-V2;
- ``nn.MSELoss`` over the T-1 emitted frames in patch space, ``torch.optim.Adam`` and
  ``zero_grad(); loss.backward(); step()`` as the official ``Model.train``;
- the patch reshape on the host in NumPy (the official ``reshape_patch``) before
  ``torch.FloatTensor(...)``, which is part of the timed step, as there.

Weights are drawn with torch's default ``Conv2d`` initialisation. The library never imports
this module; the benchmark's ``reference`` implementation does (it needs ``torch``).

Run on its own::

    python -m predrnn.benchmark.reference_torch --filters 64 64 64 64 --batch-size 8 --steps 3
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def reshape_patch(frames: np.ndarray, patch_size: int) -> np.ndarray:
    """(B, T, H, W, C) -> (B, T, H/p, W/p, p*p*C), the official ``reshape_patch`` layout."""
    b, t, h, w, c = frames.shape
    p = patch_size
    a = frames.reshape(b, t, h // p, p, w // p, p, c)
    a = a.transpose(0, 1, 2, 4, 3, 5, 6)
    return a.reshape(b, t, h // p, w // p, p * p * c)


class SpatioTemporalLSTMCell(nn.Module):
    def __init__(self, in_channel, num_hidden, width, filter_size, stride, layer_norm):
        super().__init__()
        self.num_hidden = num_hidden
        self.padding = filter_size // 2
        self._forget_bias = 1.0

        def block(cin, cout):
            conv = nn.Conv2d(cin, cout, kernel_size=filter_size, stride=stride, padding=self.padding, bias=False)
            if layer_norm:
                return nn.Sequential(conv, nn.LayerNorm([cout, width, width]))
            return nn.Sequential(conv)

        self.conv_x = block(in_channel, num_hidden * 7)
        self.conv_h = block(num_hidden, num_hidden * 4)
        self.conv_m = block(num_hidden, num_hidden * 3)
        self.conv_o = block(num_hidden * 2, num_hidden)
        self.conv_last = nn.Conv2d(num_hidden * 2, num_hidden, kernel_size=1, stride=1, padding=0, bias=False)

    def forward(self, x_t, h_t, c_t, m_t):
        x_concat = self.conv_x(x_t)
        h_concat = self.conv_h(h_t)
        m_concat = self.conv_m(m_t)
        i_x, f_x, g_x, i_x_prime, f_x_prime, g_x_prime, o_x = torch.split(x_concat, self.num_hidden, dim=1)
        i_h, f_h, g_h, o_h = torch.split(h_concat, self.num_hidden, dim=1)
        i_m, f_m, g_m = torch.split(m_concat, self.num_hidden, dim=1)

        i_t = torch.sigmoid(i_x + i_h)
        f_t = torch.sigmoid(f_x + f_h + self._forget_bias)
        g_t = torch.tanh(g_x + g_h)
        delta_c = i_t * g_t
        c_new = f_t * c_t + delta_c

        i_t_prime = torch.sigmoid(i_x_prime + i_m)
        f_t_prime = torch.sigmoid(f_x_prime + f_m + self._forget_bias)
        g_t_prime = torch.tanh(g_x_prime + g_m)
        delta_m = i_t_prime * g_t_prime
        m_new = f_t_prime * m_t + delta_m

        mem = torch.cat((c_new, m_new), 1)
        o_t = torch.sigmoid(o_x + o_h + self.conv_o(mem))
        h_new = o_t * torch.tanh(self.conv_last(mem))
        return h_new, c_new, m_new, delta_c, delta_m


class RNN(nn.Module):
    """PredRNN (``decoupling_beta == 0``) or PredRNN-V2 (``> 0``), as the official ``RNN`` classes."""

    def __init__(
        self,
        num_layers,
        num_hidden,
        patch_size,
        img_width,
        img_channel=1,
        filter_size=5,
        layer_norm=False,
        total_length=20,
        decoupling_beta=0.0,
    ):
        super().__init__()
        self.frame_channel = patch_size * patch_size * img_channel
        self.num_layers = num_layers
        self.num_hidden = num_hidden
        self.total_length = total_length
        self.decoupling_beta = decoupling_beta
        width = img_width // patch_size
        cells = []
        for i in range(num_layers):
            in_channel = self.frame_channel if i == 0 else num_hidden[i - 1]
            cells.append(SpatioTemporalLSTMCell(in_channel, num_hidden[i], width, filter_size, 1, layer_norm))
        self.cell_list = nn.ModuleList(cells)
        self.conv_last = nn.Conv2d(num_hidden[num_layers - 1], self.frame_channel, kernel_size=1, stride=1, padding=0, bias=False)
        if decoupling_beta > 0:
            self.adapter = nn.Conv2d(num_hidden[0], num_hidden[0], 1, stride=1, padding=0, bias=False)
        self.MSE_criterion = nn.MSELoss()

    def forward(self, frames_tensor, mask_true):
        # [batch, length, height, width, channel] -> [batch, length, channel, height, width]
        frames = frames_tensor.permute(0, 1, 4, 2, 3).contiguous()
        mask_true = mask_true.permute(0, 1, 4, 2, 3).contiguous()
        batch, height, width = frames.shape[0], frames.shape[3], frames.shape[4]
        next_frames, h_t, c_t = [], [], []
        decouple_loss = []
        for i in range(self.num_layers):
            zeros = torch.zeros([batch, self.num_hidden[i], height, width], device=frames.device)
            h_t.append(zeros)
            c_t.append(zeros)
        memory = torch.zeros([batch, self.num_hidden[0], height, width], device=frames.device)
        x_gen = None
        for t in range(self.total_length - 1):
            if t == 0:
                net = frames[:, t]
            else:  # reverse scheduled sampling layout: one mask frame per input step 1 .. T-2
                net = mask_true[:, t - 1] * frames[:, t] + (1 - mask_true[:, t - 1]) * x_gen
            h_t[0], c_t[0], memory, delta_c, delta_m = self.cell_list[0](net, h_t[0], c_t[0], memory)
            terms = [(delta_c, delta_m)]
            for i in range(1, self.num_layers):
                h_t[i], c_t[i], memory, delta_c, delta_m = self.cell_list[i](h_t[i - 1], h_t[i], c_t[i], memory)
                terms.append((delta_c, delta_m))
            if self.decoupling_beta > 0:
                for delta_c, delta_m in terms:
                    dc = F.normalize(self.adapter(delta_c).view(batch, delta_c.shape[1], -1), dim=2)
                    dm = F.normalize(self.adapter(delta_m).view(batch, delta_m.shape[1], -1), dim=2)
                    decouple_loss.append(torch.mean(torch.abs(torch.cosine_similarity(dc, dm, dim=2))))
            x_gen = self.conv_last(h_t[self.num_layers - 1])
            next_frames.append(x_gen)
        next_frames = torch.stack(next_frames, dim=0).permute(1, 0, 3, 4, 2).contiguous()
        loss = self.MSE_criterion(next_frames, frames_tensor[:, 1:])
        if decouple_loss:
            loss = loss + self.decoupling_beta * torch.mean(torch.stack(decouple_loss, dim=0))
        return next_frames, loss


class ReferenceTrainer:
    """The official ``Model.train`` / ``Model.test`` pair around :class:`RNN`."""

    def __init__(
        self,
        filters,
        batch_size,
        image_size=64,
        channels=1,
        patch_size=4,
        kernel_size=5,
        total_length=20,
        input_length=10,
        layer_norm=False,
        decoupling_beta=0.0,
        lr=1e-3,
        seed=0,
        device="cpu",
    ):
        torch.manual_seed(seed)
        self.device = device
        self.patch_size = patch_size
        self.batch_size = batch_size
        self.input_length = input_length
        self.total_length = total_length
        self.image_size = image_size
        self.channels = channels
        self.network = RNN(
            len(filters), list(filters), patch_size, image_size, channels, kernel_size, layer_norm, total_length, decoupling_beta
        ).to(device)
        self.optimizer = torch.optim.Adam(self.network.parameters(), lr=lr)

    def _mask(self, mask: np.ndarray) -> np.ndarray:
        """(B, T-2) per-step values -> the official frame-shaped mask (B, T-2, h, w, p*p*C)."""
        p, s = self.patch_size, self.image_size // self.patch_size
        return np.broadcast_to(mask[:, :, None, None, None], mask.shape + (s, s, p * p * self.channels))

    def train(self, frames: np.ndarray, mask: np.ndarray) -> float:
        """One training step on host frames (B, T, H, W, C) and a (B, T-2) mask."""
        frames_tensor = torch.FloatTensor(reshape_patch(frames, self.patch_size)).to(self.device)
        mask_tensor = torch.FloatTensor(np.ascontiguousarray(self._mask(mask))).to(self.device)
        self.optimizer.zero_grad()
        _, loss = self.network(frames_tensor, mask_tensor)
        loss.backward()
        self.optimizer.step()
        return loss.detach().cpu().numpy()

    def test(self, frames: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """The official test step: forward under ``no_grad`` (predictions in patch space)."""
        frames_tensor = torch.FloatTensor(reshape_patch(frames, self.patch_size)).to(self.device)
        mask_tensor = torch.FloatTensor(np.ascontiguousarray(self._mask(mask))).to(self.device)
        with torch.no_grad():
            next_frames, _ = self.network(frames_tensor, mask_tensor)
        return next_frames.cpu().numpy()


def main(argv=None):
    parser = argparse.ArgumentParser(description="Time the PyTorch reference re-implementation on its own.")
    parser.add_argument("--filters", type=int, nargs="+", default=[64, 64, 64, 64])
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--frames", type=int, default=20)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    trainer = ReferenceTrainer(args.filters, args.batch_size, image_size=args.image_size, total_length=args.frames)
    frames = rng.random((args.batch_size, args.frames, args.image_size, args.image_size, 1), dtype=np.float32)
    mask = np.zeros((args.batch_size, args.frames - 2), np.float32)
    mask[:, :9] = 1
    trainer.train(frames, mask)  # warm-up
    times = []
    for _ in range(args.steps):
        start = time.perf_counter()
        trainer.train(frames, mask)
        times.append(time.perf_counter() - start)
    print(f"reference step: median {statistics.median(times):.3f} s over {args.steps} ({[round(t, 3) for t in times]})")


if __name__ == "__main__":
    main()
