import torch

from asr.ctc import get_backend, greedy_decode
from asr.data.dataset import SpeechDataset, collate
from asr.data.manifest import read_manifest
from asr.models import ConvBiLSTM, ConvBiLSTMDims
from asr.text import CharTokenizer


def test_small_model_overfits_one_batch(tiny_corpus):
    torch.manual_seed(0)
    tokenizer = CharTokenizer()
    dataset = SpeechDataset(read_manifest(tiny_corpus / "manifests" / "train.jsonl")[:2], tokenizer, 16000)
    batch = collate([dataset[0], dataset[1]])
    dims = ConvBiLSTMDims(n_mels=40, conv_channels=[16, 16], conv_kernels=[[11, 7], [11, 7]],
                     conv_strides=[[2, 2], [2, 1]], rnn_hidden=96, rnn_layers=2, dropout=0.0)  # fmt: skip
    model = ConvBiLSTM(dims)
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-3)
    ctc = get_backend("native")
    losses = []
    for _ in range(300):
        log_probs, lengths = model(batch.waveforms, batch.sample_lengths)
        loss = ctc(log_probs.transpose(0, 1), batch.targets, lengths, batch.target_lengths)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.1 * losses[0]
    model.eval()
    with torch.no_grad():
        log_probs, lengths = model(batch.waveforms, batch.sample_lengths)
    hypotheses = [tokenizer.decode(ids) for ids in greedy_decode(log_probs, lengths)]
    assert hypotheses == dataset.texts
