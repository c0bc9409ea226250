"""A LibriSpeech rehearsal: the built-in corpus packed exactly as OpenSLR publishes LibriSpeech,
so the real recipe (download, verify, extract, manifests, LM, train, tune, evaluate) runs end to
end without the internet (``asr-synth ROOT as_openslr=DIR``).

``DIR`` then holds, like openslr.org/resources/12 and /11:

- ``<split>.tar.gz`` for train-clean-100, dev-clean, dev-other, test-clean and test-other, members
  ``LibriSpeech/<split>/<speaker>/<chapter>/<speaker>-<chapter>-<utt>.flac`` and
  ``<speaker>-<chapter>.trans.txt`` (upper case), with ``LibriSpeech/{README,LICENSE,SPEAKERS,
  CHAPTERS,BOOKS}.TXT`` in every archive;
- ``md5sum.txt`` (OpenSLR's list) and ``SHA256SUMS`` (what ``asr.data.librispeech download
  --checksums`` takes);
- ``3-gram.pruned.1e-7.arpa.gz``: a 3-gram of the training transcripts, gzipped, in upper case;
- ``librispeech-vocab.txt``: its words, one a line, as OpenSLR's.

The built-in corpus's dev and test speakers are split in two halves: "clean" and "other".
"""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
from pathlib import Path

from asr.data.download import sha256sum
from asr.fileio import atomic_path, write_text
from asr.lm.ngram import estimate

SPLITS = {  # rehearsal split: (built-in split, which half of its speakers)
    "train-clean-100": ("train", None),
    "dev-clean": ("dev", 0),
    "dev-other": ("dev", 1),
    "test-clean": ("test", 0),
    "test-other": ("test", 1),
}
LM_NAME = "3-gram.pruned.1e-7.arpa.gz"
CHAPTERS_HEADER = ";ID    |READER|MINUTES| SUBSET           | PROJ.|BOOK ID| CH. TITLE | PROJECT TITLE\n"


def _speakers(split_dir: Path, half: int | None) -> list[Path]:
    speakers = sorted(split_dir.iterdir(), key=lambda p: p.name)
    if half is None:
        return speakers
    middle = (len(speakers) + 1) // 2
    return speakers[:middle] if half == 0 else speakers[middle:]


def _add_text(tar: tarfile.TarFile, name: str, text: str) -> None:
    data = text.encode()
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), 0o644
    tar.addfile(info, io.BytesIO(data))


def _metadata(corpus: Path) -> dict[str, str]:
    """LibriSpeech's top-level text files, for the rehearsal's speakers and chapters."""
    speakers, chapters = [], []
    for split, (source, half) in SPLITS.items():
        for speaker in _speakers(corpus / source, half):
            for chapter in sorted(speaker.iterdir(), key=lambda p: p.name):
                minutes = sum(1 for _ in chapter.glob("*.flac")) * 0.05
                speakers.append(
                    f"{speaker.name:<5}| F | {split:<17}| {minutes:6.2f} | espeak-ng voice {speaker.name}"
                )
                chapters.append(
                    f"{chapter.name:<6}| {speaker.name:<6}| {minutes:6.2f} | {split:<17}| 0     | 0     "
                    "| generated | the built-in corpus"
                )
    return {
        "README.TXT": "A rehearsal of LibriSpeech: the built-in espeak-ng corpus in its layout.\n",
        "LICENSE.TXT": "Generated audio; no rights reserved.\n",
        "SPEAKERS.TXT": ";ID  |SEX| SUBSET           |MINUTES| NAME\n" + "\n".join(speakers) + "\n",
        "CHAPTERS.TXT": CHAPTERS_HEADER + "\n".join(chapters) + "\n",
        "BOOKS.TXT": ";BOOK ID| BOOK TITLE\n0      | generated\n",
    }


def write_openslr(corpus: Path, out: Path) -> list[Path]:
    """Pack the built-in corpus at ``corpus`` (made by ``generate_corpus``) into ``out`` as above;
    returns the archives."""
    out.mkdir(parents=True, exist_ok=True)
    metadata = _metadata(corpus)
    archives = []
    for split, (source, half) in SPLITS.items():
        archive = out / f"{split}.tar.gz"
        with atomic_path(archive) as temp, tarfile.open(temp, "w:gz") as tar:
            for name, text in metadata.items():
                _add_text(tar, f"LibriSpeech/{name}", text)
            for speaker in _speakers(corpus / source, half):
                tar.add(speaker, arcname=f"LibriSpeech/{split}/{speaker.name}", recursive=True)
        archives.append(archive)
    transcripts = [
        line.split(" ", 1)[1].split()
        for path in sorted((corpus / "train").glob("*/*/*.trans.txt"))
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    model = estimate([[word.lower() for word in words] for words in transcripts], 3)
    plain = out / ".3-gram.arpa"
    model.write_arpa(plain)
    with atomic_path(out / LM_NAME) as temp, gzip.open(temp, "wt", encoding="utf-8") as file:
        for line in plain.read_text(encoding="utf-8").splitlines(keepends=True):
            upper = line.upper().replace("<S>", "<s>").replace("</S>", "</s>")  # <UNK>, as OpenSLR's
            file.write(line if line.startswith(("\\", "ngram ")) else upper)
    plain.unlink()
    write_text(
        out / "librispeech-vocab.txt", "".join(f"{word.upper()}\n" for word in sorted(model.vocabulary))
    )
    files = [*archives, out / LM_NAME, out / "librispeech-vocab.txt"]
    write_text(
        out / "md5sum.txt", "".join(f"{hashlib.md5(f.read_bytes()).hexdigest()}  {f.name}\n" for f in files)
    )
    write_text(out / "SHA256SUMS", "".join(f"{sha256sum(f)}  {f.name}\n" for f in files))
    return archives
