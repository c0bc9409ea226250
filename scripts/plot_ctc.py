"""Figure for docs/ctc.md: what CTC sees in one utterance of the built-in corpus.

    python scripts/plot_ctc.py CHECKPOINT AUDIO "reference text" [--output docs/ctc_posterior.png]

Top: the log-mel features. Middle: the model's per-frame token probabilities. Bottom: the CTC
posterior, the probability that frame t is spent on each token, summed over every alignment that
collapses to the reference; it comes from the custom kernel's gradient (posterior =
exp(log_probs) - gradient).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from asr.audio import load_audio  # noqa: E402
from asr.checkpoint import load_model  # noqa: E402
from asr.ctc.custom import ctc_loss  # noqa: E402
from asr.text import normalize_text  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("audio")
    parser.add_argument("text")
    parser.add_argument("--output", type=Path, default=Path("docs/ctc_posterior.png"))
    args = parser.parse_args()

    model, tokenizer = load_model(args.checkpoint, torch.device("cpu"))
    audio = torch.from_numpy(load_audio(args.audio, model.dims.sample_rate))[None]
    lengths = torch.tensor([audio.shape[1]])
    text = normalize_text(args.text)
    with torch.no_grad():
        features, _ = model.frontend(audio, lengths)
        log_probs, frames = model(audio, lengths)
    log_probs = log_probs.transpose(0, 1).requires_grad_()  # (time, batch, vocab)
    target = torch.tensor([tokenizer.encode(text)])
    loss = ctc_loss(log_probs, target, frames, torch.tensor([target.shape[1]]), reduction="sum")
    (grad,) = torch.autograd.grad(loss, log_probs)
    # Only the rows of the blank and of the tokens in the text: the others stay near zero.
    rows = sorted({tokenizer.blank, *target[0].tolist()})
    posterior = (log_probs.exp() - grad)[:, 0, rows].detach().T  # (tokens, time)
    probabilities = log_probs.exp()[:, 0, rows].detach().T
    labels = ["blank" if i == tokenizer.blank else repr(tokenizer.tokens[i]) for i in rows]
    figure, axes = plt.subplots(3, 1, figsize=(12, 9), gridspec_kw={"height_ratios": [1, 1.4, 1.4]})
    axes[0].imshow(features[0].T, origin="lower", aspect="auto", cmap="magma")
    axes[0].set_title("log-mel features (10 ms frames)")
    axes[0].set_ylabel("mel bin")
    for axis, values, title in [(axes[1], probabilities, "model: P(token | frame)"),
                                (axes[2], posterior, f"CTC posterior given \u201c{text}\u201d")]:  # fmt: skip
        axis.imshow(
            values, origin="lower", aspect="auto", cmap="Blues", vmin=0, vmax=1, interpolation="nearest"
        )
        axis.set_yticks(range(len(labels)), labels, fontsize=8)
        axis.set_title(title)
    axes[2].set_xlabel("output frame (40 ms, after 4x subsampling)")
    figure.suptitle(f"CTC loss {loss.item():.2f} nats for {Path(args.audio).name}")
    figure.tight_layout()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.output, dpi=110)
    print(f"-> {args.output}")


if __name__ == "__main__":
    main()
