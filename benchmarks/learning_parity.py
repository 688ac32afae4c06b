#!/usr/bin/env python3
"""Learning parity with the official PyTorch PredRNN (thuml/predrnn-pytorch): same-start replays.

The official code is run from a checkout given as ``--peer-dir`` (put on ``sys.path`` and
imported, as ../shared/tools/official_predrnn_bench.py does); nothing of it is copied here.

A replay starts both sides from the same weights and feeds them the same batches and
teacher-forcing masks, so only the training arithmetic differs. The shared tool records
them (``--record DIR``: ``DIR/init.ckpt``, the official step-0 weights, and
``DIR/schedule.npz``: per step the batch indices, the sampling tokens of input frames
10..18 and the official loss)::

    python ../shared/tools/official_predrnn_bench.py --peer-dir PEER --model predrnn \\
        --batch 8 --num-hidden 32,32,32,32 --lr 3e-4 --steps 40 --warmup 0 --threads 1 \\
        --seed 0 --data train.npy --record rec

Then one command per comparison (each writes one CSV: step, loss)::

    # our model (this process's KERAS_BACKEND) with an optimizer of ours
    python benchmarks/learning_parity.py replay --record rec --data train.npy \\
        --side ours --optimizer pytorch --epsilon 1e-8 --out ours_pytorch_adam.csv
    # our forward/backward, PyTorch's own torch.optim.Adam (KERAS_BACKEND=torch only)
    ... --side ours --optimizer torch.optim.Adam --epsilon 1e-8
    # the official network with an optimizer of our choice (e.g. Keras' Adam arithmetic)
    ... --side official --peer-dir PEER --optimizer keras --epsilon 1e-7
    # the step-1 gradients of both sides from the same weights and batch
    python benchmarks/learning_parity.py gradients --record rec --data train.npy --peer-dir PEER
    # table + plot of several CSVs against the recorded official losses
    python benchmarks/learning_parity.py compare --record rec A.csv B.csv ... --out-dir DIR

Optimizers (all Adam, lr and betas as given):

- ``pytorch``: PyTorch's update, eps added after bias correction,
  ``p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)`` (what the official code uses);
  on our side the training job's optimizer with ``train.adam_epsilon_placement = "pytorch"``.
- ``keras``: Keras' update, eps added to sqrt(v) before bias correction (epsilon-hat),
  ``p -= lr*sqrt(1-b2^t)/(1-b1^t) * m / (sqrt(v) + eps)``; on our side ``keras.optimizers.Adam``
  (``train.adam_epsilon_placement = "keras"``).
- ``torch.optim.Adam``: PyTorch's own class, stepping our variables' torch tensors
  (KERAS_BACKEND=torch) or the official network's parameters.

Our side trains with the model's Keras train step (``train_on_batch``, the loss compiled
as in predrnn.jobs.train), one gradient step per recorded step, except with
``torch.optim.Adam`` (a manual forward/backward/step). The mask: ours is (B, T-2) over
input steps 1..T-2; the official tokens cover input steps 10..18 (reference schedule,
``t - input_length``), so ours is ones for steps 1..9 and the tokens after.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
import types
from pathlib import Path

import numpy as np

TOTAL, CONTEXT = 20, 10


# ----------------------------------------------------------------------------- data
def load_record(record):
    schedule = np.load(Path(record) / "schedule.npz")
    if int(schedule["reverse"]):
        sys.exit("This replay covers the reference (PredRNN v1) schedule; the record uses reverse sampling.")
    return schedule["indices"], schedule["tokens"], schedule["losses"]


def batch(frames, indices):
    x = np.asarray(frames[np.sort(indices)], np.float32) / 255.0
    return x[..., None] if x.ndim == 4 else x


def our_mask(tokens):
    """Official tokens (B, T-CONTEXT-1) for input steps CONTEXT..T-2 -> our (B, T-2) mask over steps 1..T-2."""
    mask = np.ones((tokens.shape[0], TOTAL - 2), np.float32)
    mask[:, CONTEXT - 1 :] = tokens
    return mask


# ----------------------------------------------------------------------------- official side
def import_peer(peer_dir):
    sys.path.insert(0, os.path.abspath(peer_dir))
    stub = types.ModuleType("core.utils.tsne")  # imported by predrnn_v2.py, needs matplotlib/sklearn
    stub.visualization = None
    sys.modules["core.utils.tsne"] = stub
    from core.models.model_factory import Model
    from core.utils.preprocess import reshape_patch

    return Model, reshape_patch


def official_configs(filters, patch, lr, width=64):
    """The namespace the official run.py builds from mnist_script/predrnn_mnist_train.sh (v1)."""
    return argparse.Namespace(
        model_name="predrnn",
        num_hidden=",".join(map(str, filters)),
        device="cpu",
        lr=lr,
        batch_size=8,
        img_width=width,
        img_channel=1,
        patch_size=patch,
        input_length=CONTEXT,
        total_length=TOTAL,
        filter_size=5,
        stride=1,
        layer_norm=0,
        decouple_beta=0.1,
        visual=0,
        visual_path=".",
        scheduled_sampling=1,
        sampling_start_value=1.0,
        sampling_changing_rate=2e-5,
        sampling_stop_iter=50000,
        reverse_scheduled_sampling=0,
        r_sampling_step_1=25000,
        r_sampling_step_2=50000,
        r_exp_alpha=2500,
    )


def official_model(peer_dir, record, lr):
    import torch

    Model, reshape_patch = import_peer(peer_dir)
    state = torch.load(Path(record) / "init.ckpt", map_location="cpu", weights_only=True)["net_param"]
    filters = [
        state[f"cell_list.{l}.conv_h.0.weight"].shape[1]
        for l in range(len({k.split(".")[1] for k in state if k.startswith("cell_list.")}))
    ]
    patch = int(round(np.sqrt(state["conv_last.weight"].shape[0])))
    model = Model(official_configs(filters, patch, lr))
    model.network.load_state_dict(state)
    return model, reshape_patch, patch


def official_inputs(x, tokens, reshape_patch, patch):
    ims = reshape_patch(x, patch)
    side, depth = ims.shape[2], ims.shape[4]
    mask = np.broadcast_to(tokens[:, :, None, None, None], tokens.shape + (side, side, depth)).astype(np.float32)
    return ims, mask


class KerasStyleAdam:
    """Keras' Adam arithmetic (epsilon-hat) on torch tensors, for the official network."""

    def __init__(self, params, lr, eps, betas=(0.9, 0.999)):
        import torch

        self.params = [p for p in params if p.requires_grad]
        self.lr, self.eps, (self.b1, self.b2), self.t = lr, eps, betas, 0
        self.m = [torch.zeros_like(p) for p in self.params]
        self.v = [torch.zeros_like(p) for p in self.params]

    def zero_grad(self):
        for p in self.params:
            p.grad = None

    def step(self):
        import torch

        self.t += 1
        alpha = self.lr * (1 - self.b2**self.t) ** 0.5 / (1 - self.b1**self.t)
        with torch.no_grad():
            for p, m, v in zip(self.params, self.m, self.v):
                g = p.grad
                m.add_((g - m) * (1 - self.b1))
                v.add_((g * g - v) * (1 - self.b2))
                p.sub_(m * alpha / (v.sqrt() + self.eps))


def replay_official(args, frames, indices, tokens):
    import torch

    torch.set_num_threads(args.threads)
    model, reshape_patch, patch = official_model(args.peer_dir, args.record, args.lr)
    if args.optimizer == "keras":
        model.optimizer = KerasStyleAdam(model.network.parameters(), args.lr, args.epsilon, (args.beta_1, args.beta_2))
    else:  # pytorch or torch.optim.Adam: PyTorch's Adam
        model.optimizer = torch.optim.Adam(
            model.network.parameters(), lr=args.lr, eps=args.epsilon, betas=(args.beta_1, args.beta_2)
        )
    if args.perturb:
        # A float-noise control: the same arithmetic from weights changed by ~perturb relative.
        generator = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for p in model.network.parameters():
                p.mul_(1 + args.perturb * torch.randn(p.shape, generator=generator))
    losses = []
    for step in range(args.steps):
        ims, mask = official_inputs(batch(frames, indices[step]), tokens[step], reshape_patch, patch)
        losses.append(float(model.train(ims, mask)))
        print(f"step {step + 1} loss {losses[-1]:.7f}", file=sys.stderr, flush=True)
    return losses


# ----------------------------------------------------------------------------- our side
def our_model(record):
    from predrnn.official_checkpoint import load_official_checkpoint

    return load_official_checkpoint(Path(record) / "init.ckpt", image_size=64)


def replay_ours(args, frames, indices, tokens):
    import keras

    from predrnn.jobs.config import TrainConfig
    from predrnn.jobs.train import _compile

    model = our_model(args.record)
    losses = []
    if args.optimizer == "torch.optim.Adam":
        import torch

        if keras.backend.backend() != "torch":
            sys.exit("--optimizer torch.optim.Adam steps the variables' torch tensors: run with KERAS_BACKEND=torch.")
        params = [v.value for v in model.trainable_variables]
        optimizer = torch.optim.Adam(params, lr=args.lr, eps=args.epsilon, betas=(args.beta_1, args.beta_2))
        for step in range(args.steps):
            x, mask = batch(frames, indices[step]), our_mask(tokens[step])
            optimizer.zero_grad()
            y = model({"frames": torch.from_numpy(x), "teacher_forcing_mask": torch.from_numpy(mask)}, training=True)
            loss = torch.mean((y - torch.from_numpy(x[:, 1:])) ** 2)
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
            print(f"step {step + 1} loss {losses[-1]:.7f}", file=sys.stderr, flush=True)
        return losses
    config = TrainConfig(
        learning_rate=args.lr,
        adam_epsilon=args.epsilon,
        adam_epsilon_placement=args.optimizer,
        adam_beta_1=args.beta_1,
        adam_beta_2=args.beta_2,
        jit_compile=args.jit_compile,
    )
    _compile(model, config)  # the training job's optimizer and loss
    for step in range(args.steps):
        x, mask = batch(frames, indices[step]), our_mask(tokens[step])
        losses.append(float(model.train_on_batch({"frames": x, "teacher_forcing_mask": mask}, x[:, 1:])))
        print(f"step {step + 1} loss {losses[-1]:.7f}", file=sys.stderr, flush=True)
    return losses


def command_replay(args):
    frames = np.load(args.data, mmap_mode="r")
    indices, tokens, recorded = load_record(args.record)
    args.steps = min(args.steps or len(indices), len(indices))
    if args.threads:
        os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    start = time.perf_counter()
    if args.side == "official":
        losses = replay_official(args, frames, indices, tokens)
        backend = "torch (official code)"
    else:
        if args.threads:
            _limit_threads(args.threads)
        losses = replay_ours(args, frames, indices, tokens)
        import keras

        backend = keras.backend.backend()
    seconds = time.perf_counter() - start
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["step", "loss", "official_loss", "relative_difference"])
        for step, loss in enumerate(losses, 1):
            ref = float(recorded[step - 1])
            writer.writerow([step, f"{loss:.9g}", f"{ref:.9g}", f"{(loss - ref) / ref:.3e}"])
    meta = {
        "side": args.side,
        "backend": backend,
        "optimizer": args.optimizer,
        "epsilon": args.epsilon,
        "lr": args.lr,
        "betas": [args.beta_1, args.beta_2],
        "steps": len(losses),
        "threads": args.threads,
        "perturb": getattr(args, "perturb", 0.0),
        "seconds": round(seconds, 1),
    }
    out.with_suffix(".json").write_text(json.dumps(meta, indent=1) + "\n")
    print(json.dumps(meta))


def _limit_threads(threads):
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    if backend == "torch":
        import torch

        torch.set_num_threads(threads)
    elif backend == "tensorflow":
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)


# ----------------------------------------------------------------------------- gradients
def command_gradients(args):
    """Step-1 gradients of both sides from the record's weights and first batch (torch backend)."""
    import keras
    import torch

    from predrnn.official_checkpoint import assign_official_state

    if keras.backend.backend() != "torch":
        sys.exit("gradients compares torch tensors: run with KERAS_BACKEND=torch.")
    torch.set_num_threads(args.threads or 1)
    frames = np.load(args.data, mmap_mode="r")
    indices, tokens, recorded = load_record(args.record)
    x = batch(frames, indices[args.step - 1])
    official, reshape_patch, patch = official_model(args.peer_dir, args.record, args.lr)
    ims, mask = official_inputs(x, tokens[args.step - 1], reshape_patch, patch)
    official.network.zero_grad()
    _, loss_official = official.network(torch.FloatTensor(ims), torch.FloatTensor(mask))
    loss_official.backward()
    official_grads = {k: p.grad.detach().numpy().copy() for k, p in official.network.named_parameters()}

    ours = our_model(args.record)
    y = ours(
        {"frames": torch.from_numpy(x), "teacher_forcing_mask": torch.from_numpy(our_mask(tokens[args.step - 1]))}, training=True
    )
    loss_ours = torch.mean((y - torch.from_numpy(x[:, 1:])) ** 2)
    loss_ours.backward()
    our_grads = [v.value.grad.detach().numpy().copy() for v in ours.trainable_variables]
    # The official gradients in our variables' layout: the checkpoint converter is a linear re-layout.
    mapped = our_model(args.record)
    assign_official_state(mapped, official_grads)
    rows = []
    for variable, mine, theirs in zip(ours.trainable_variables, our_grads, [v.numpy() for v in mapped.trainable_variables]):
        a, b = mine.ravel().astype(np.float64), theirs.ravel().astype(np.float64)
        rows.append(
            {
                "variable": variable.path,
                "size": a.size,
                "norm_ours": np.linalg.norm(a),
                "norm_official": np.linalg.norm(b),
                "relative_difference": np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30),
                "cosine": float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-300)),
                "rms": np.sqrt(np.mean(b**2)),
                "max_abs": np.abs(b).max(),
            }
        )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    print(f"loss ours {float(loss_ours):.9g} official {float(loss_official):.9g} recorded {recorded[args.step - 1]:.9g}")
    for row in rows:
        print(
            f"{row['variable']:50s} |g| ours {row['norm_ours']:.4e} official {row['norm_official']:.4e} "
            f"rel.diff {row['relative_difference']:.2e} cos {row['cosine']:.8f} rms {row['rms']:.2e}"
        )


# ----------------------------------------------------------------------------- compare
def command_compare(args):
    indices, tokens, recorded = load_record(args.record)
    runs = {}
    for path in args.csv:
        with open(path) as handle:
            runs[Path(path).stem] = [float(row["loss"]) for row in csv.DictReader(handle)]
    steps = max(len(v) for v in runs.values())
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    names = ["official_recorded"] + list(runs)
    with open(out / f"{args.name}.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["step"] + names)
        for s in range(steps):
            writer.writerow([s + 1, f"{recorded[s]:.9g}"] + [f"{v[s]:.9g}" if s < len(v) else "" for v in runs.values()])
    lines = ["| step | official | " + " | ".join(runs) + " |", "|---:|---:|" + "---:|" * len(runs)]
    for s in range(steps):
        cells = [f"{(v[s] - recorded[s]) / recorded[s] * 100:+.2f}%" if s < len(v) else "" for v in runs.values()]
        lines.append(f"| {s + 1} | {recorded[s]:.6f} | " + " | ".join(cells) + " |")
    (out / f"{args.name}.md").write_text(
        "Per-step training loss: the official code's (recorded), and each replay's relative difference to it.\n\n"
        + "\n".join(lines)
        + "\n"
    )
    print("\n".join(lines))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 7), sharex=True)
    x = np.arange(1, steps + 1)
    top.plot(x, recorded[:steps], "k-", lw=2, label="official (recorded)")
    for name, v in runs.items():
        top.plot(x[: len(v)], v, ".-", label=name)
        bottom.plot(x[: len(v)], (np.array(v) - recorded[: len(v)]) / recorded[: len(v)] * 100, ".-", label=name)
    top.set_ylabel("training loss (MSE per pixel)")
    top.legend(fontsize=7)
    bottom.axhline(0, color="k", lw=1)
    bottom.set_ylabel("relative to official (%)")
    bottom.set_xlabel("step (same start, batches and masks)")
    fig.suptitle(args.title or "Same-start replay against the official PredRNN")
    fig.tight_layout()
    fig.savefig(out / f"{args.name}.png", dpi=110)


def welch_line(side, ours, official):
    """Welch's t-test of a side's mean against the official one, with the 95% interval of
    the difference (Welch-Satterthwaite degrees of freedom)."""
    from scipy import stats

    test = stats.ttest_ind(ours, official, equal_var=False)
    low, high = test.confidence_interval(0.95)
    reference = official.mean()
    return (
        f"{side} - official: {ours.mean() - reference:+.2f} MSE/frame, Welch t = {test.statistic:.2f}, "
        f"p = {test.pvalue:.2f} (df {test.df:.1f}); 95% interval of the difference {low:+.2f} to {high:+.2f} "
        f"({100 * low / reference:+.0f}% to {100 * high / reference:+.0f}% of the official mean)\n"
    )


def command_seeds(args):
    """The multi-seed table of benchmarks/learning_parity_seeds.sh: per seed the official and
    our test MSE per frame (300 sequences, 10 -> 10), mean and sample std per side."""
    out = Path(args.dir)
    sides = {"official": {}, "ours": {}, "ours, Keras Adam eps 1e-7": {}}
    for path in sorted(out.glob("official_seed*.json")):
        lines = [line for line in path.read_text().splitlines() if line.startswith("{")]
        if lines:
            sides["official"][int(path.stem.removeprefix("official_seed"))] = json.loads(lines[-1])["eval"]["mse_per_frame"]
    for prefix, side in (("ours_seed", "ours"), ("ours_keras_seed", "ours, Keras Adam eps 1e-7")):
        for path in sorted(out.glob(f"{prefix}*/test300.json")):
            sides[side][int(path.parent.name.removeprefix(prefix))] = json.loads(path.read_text())["mse_per_frame"]
    sides = {k: v for k, v in sides.items() if v}
    seeds = sorted({s for v in sides.values() for s in v})
    if not seeds:
        sys.exit(f"{out}: no finished runs (official_seed*.json, ours_seed*/test300.json)")
    lines = [
        "| side | " + " | ".join(f"seed {s}" for s in seeds) + " | mean ± std | vs official |",
        "|---|" + "---:|" * (len(seeds) + 2),
    ]
    results = {side: np.array([values[s] for s in seeds if s in values]) for side, values in sides.items()}
    official = results.get("official", np.array([]))
    official_mean = float(official.mean()) if len(official) else None
    rows = []
    for side, values in sides.items():
        v = results[side]
        mean = float(v.mean())
        ratio = f"{mean / official_mean:.3f}x" if official_mean and side != "official" else ""
        cells = [f"{values[s]:.2f}" if s in values else "" for s in seeds]
        spread = f"{mean:.2f} ± {v.std(ddof=1):.2f}" if len(v) > 1 else f"{mean:.2f}"
        lines.append(f"| {side} | " + " | ".join(cells) + f" | {spread} (n={len(v)}) | {ratio} |")
        rows += [(side, s, values[s]) for s in seeds if s in values]
    table = "\n".join(lines) + "\n"
    for side, v in results.items():
        if side != "official" and len(v) > 1 and len(official) > 1:
            table += "\n" + welch_line(side, v, official)
    print(table, end="")
    (out / "seeds.md").write_text(
        "Test MSE per frame, 300 two-digit sequences, 10 -> 10, after the same training budget (seeds.csv).\n\n" + table
    )
    with open(out / "seeds.csv", "w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["side", "seed", "test_mse_per_frame"])
        writer.writerows(rows)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--record", required=True, help="folder written by official_predrnn_bench.py --record")
    common.add_argument("--data", help="the uint8 N x 20 x 64 x 64 .npy the record's indices point into")
    common.add_argument("--peer-dir", help="checkout of thuml/predrnn-pytorch")
    common.add_argument("--lr", type=float, default=3e-4)
    common.add_argument("--threads", type=int, default=1)
    replay = sub.add_parser("replay", parents=[common], help="replay the record, write per-step losses")
    replay.add_argument("--side", choices=["ours", "official"], default="ours")
    replay.add_argument("--optimizer", choices=["pytorch", "keras", "torch.optim.Adam"], default="pytorch")
    replay.add_argument("--epsilon", type=float, default=1e-8)
    replay.add_argument("--beta-1", type=float, default=0.9)
    replay.add_argument("--beta-2", type=float, default=0.999)
    replay.add_argument(
        "--perturb",
        type=float,
        default=0.0,
        help="official side: multiply each initial weight by 1 + perturb * N(0, 1) (a float-noise control)",
    )
    replay.add_argument("--jit-compile", default="auto", choices=["auto", "true", "false"])
    replay.add_argument("--steps", type=int, default=0, help="default: all recorded steps")
    replay.add_argument("--out", required=True, help="CSV to write (and a .json beside it)")
    gradients = sub.add_parser("gradients", parents=[common], help="compare the step-N gradients of both sides")
    gradients.add_argument("--step", type=int, default=1)
    gradients.add_argument("--out", required=True)
    compare = sub.add_parser("compare", help="table + plot of replays against the recorded official losses")
    compare.add_argument("--record", required=True)
    compare.add_argument("csv", nargs="+")
    compare.add_argument("--out-dir", required=True)
    compare.add_argument("--name", default="replay")
    compare.add_argument("--title")
    seeds = sub.add_parser("seeds", help="the multi-seed table of learning_parity_seeds.sh's folder")
    seeds.add_argument("dir")
    args = parser.parse_args(argv)
    if args.command in ("replay", "gradients") and not args.data:
        parser.error("--data is needed")
    if (args.command == "gradients" or getattr(args, "side", "") == "official") and not args.peer_dir:
        parser.error("--peer-dir is needed for the official side")
    commands = {"replay": command_replay, "gradients": command_gradients, "compare": command_compare, "seeds": command_seeds}
    commands[args.command](args)


if __name__ == "__main__":
    main()
