"""Write tests/fixtures/trained_log_probs.pt: a trained model's log-probs for a few utterances, the
peaky inputs the custom CTC kernels must be exact on (tests/test_ctc_custom.py checks them against
the float64 reference).

    python scripts/make_ctc_fixture.py runs/demo/checkpoints/best.pt [--manifest ...] [--count 6]

The file holds float32 ``log_probs`` (time, batch, vocab), ``targets`` (batch, max_target),
``input_lengths``, ``target_lengths`` and ``blank``; it loads with ``weights_only=True``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from asr.audio import load_audio
from asr.data.manifest import read_manifest
from asr.fileio import atomic_path
from asr.inference import load_any

OUTPUT = Path("tests/fixtures/trained_log_probs.pt")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--manifest", default="data/synthetic/manifests/test.jsonl")
    parser.add_argument("--count", type=int, default=6, help="utterances, spread over the manifest")
    args = parser.parse_args()
    model, tokenizer = load_any(args.checkpoint, torch.device("cpu"))
    entries = read_manifest(args.manifest)
    chosen = entries[:: max(1, len(entries) // args.count)][: args.count]
    audio = [torch.from_numpy(load_audio(entry.audio_filepath, model.dims.sample_rate)) for entry in chosen]
    lengths = torch.tensor([len(a) for a in audio])
    batch = torch.zeros(len(audio), int(lengths.max()))
    for i, samples in enumerate(audio):
        batch[i, : len(samples)] = samples
    with torch.inference_mode():
        log_probs, frames = model(batch, lengths)
    labels = [tokenizer.encode(entry.text) for entry in chosen]
    targets = torch.zeros(len(labels), max(map(len, labels)), dtype=torch.long)
    for i, ids in enumerate(labels):
        targets[i, : len(ids)] = torch.tensor(ids)
    fixture = {
        "log_probs": log_probs.float().transpose(0, 1).contiguous(),  # (time, batch, vocab)
        "targets": targets,
        "input_lengths": frames.long(),
        "target_lengths": torch.tensor([len(ids) for ids in labels]),
        "blank": torch.tensor(tokenizer.blank),
    }
    with atomic_path(OUTPUT) as temp:
        torch.save(fixture, temp)
    top = fixture["log_probs"].max(-1).values.exp()
    print(f"-> {OUTPUT}: {len(chosen)} utterances, {int(frames.sum())} frames, "
          f"median top-token probability {top.median():.4f}")  # fmt: skip


if __name__ == "__main__":
    main()
