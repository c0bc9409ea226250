"""Our n-gram estimator (``asr-build-lm``) against kaldingram's (SRILM-style Kneser-Ney, entropy
pruning): build time, size, held-out perplexity and beam-search WER of n-grams from the same text.

    python scripts/compare_lm.py                      # everything, defaults as in --help
    python scripts/compare_lm.py --no-wer             # perplexity only (seconds)
    python scripts/compare_lm.py --limit 20 --lm-weights 0.5 1 --word-scores 0 1   # a quick WER check

kaldingram is a dependency of the package (``asr-build-lm prune=``).

- Build: ours is ``asr.lm.ngram.estimate`` then ``write_arpa`` (what ``asr-build-lm`` runs);
  kaldingram's is ``kaldingram train``, run in this process on the same normalised transcripts, one
  sentence a line. Wall seconds of each, the text already read (``+`` seconds: pruning).
- Pruning: entropy pruning (Stolcke, 1998; kaldingram's, as ``asr-build-lm prune=`` runs it) at each
  ``--prune`` threshold, applied to both ARPA files.
- Perplexity: every ARPA file is scored by one scorer, kaldingram's ``ppl`` (SRILM's convention:
  ``</s>`` counted, ``<s>`` not). OOVs are held-out words missing from an LM's unigrams. Our ARPA has
  an ``<unk>`` unigram, kaldingram's has none, and its scorer drops a whole sentence it cannot score
  ("zeroprob"); so ``ppl`` is over the held-out sentences whose words every LM knows, the same for every
  row, and ``OOVs`` counts the held-out words outside each LM's vocabulary.
- WER: for each LM, ``asr-tune-lm``'s grid search of alpha and beta on ``--dev``, then ``asr-eval
  decoder=beam_lm`` with the weights it chose, on the held-out manifest (``asr.lm.tune.tune`` and
  ``asr.evaluate.evaluate`` as they are: the acoustic model runs again for every LM). ``--limit N``
  decodes the first N utterances of each manifest; perplexity always uses all of them.

Writes benchmarks/lm_compare.json after the perplexities, and again after each LM's WER.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

from asr.data.manifest import read_manifest, write_manifest
from asr.errors import UserError, exit_on_user_error
from asr.evaluate import DecoderKind, EvalConfig, evaluate
from asr.fileio import write_json
from asr.lm.ngram import estimate, prune_arpa, read_sentences
from asr.lm.tune import TuneConfig, tune

OUTPUT = Path("benchmarks") / "lm_compare.json"
ARPA_ENCODING = "utf-8"
"""kaldingram reads and writes text as latin-1, which carries UTF-8 bytes through unchanged."""


def build_ours(sentences: list[list[str]], order: int, path: Path) -> float:
    start = time.perf_counter()
    estimate(sentences, order).write_arpa(path)
    return time.perf_counter() - start


def build_kaldingram(sentences: list[list[str]], order: int, path: Path) -> float:
    from kaldingram import train

    text = path.with_suffix(".txt")
    text.write_text("".join(" ".join(words) + "\n" for words in sentences), encoding=ARPA_ENCODING)
    start = time.perf_counter()
    train.main(["--ngram-order", str(order), "--text", str(text), "--lm", str(path)])
    return time.perf_counter() - start


def prune(source: Path, threshold: float, path: Path) -> float:
    """``asr-build-lm prune=threshold`` applied to ``source``; seconds, loading and writing included."""
    start = time.perf_counter()
    prune_arpa(source, threshold, path)
    return time.perf_counter() - start


def score(rows: list[dict], heldout: list[list[str]]) -> dict:
    """Fill each row's n-gram counts, OOVs and perplexities; return what was scored."""
    from kaldingram.ppl import compute_ppl
    from kaldingram.prune import ArpaParser

    models = [ArpaParser().loadf(row["arpa"], encoding=ARPA_ENCODING)[0] for row in rows]
    known = set.intersection(*(set(lm.vocabulary(sort=False)) for lm in models))
    lines = [" ".join(words) for words in heldout]
    in_vocabulary = [" ".join(words) for words in heldout if known.issuperset(words)]
    if not in_vocabulary:
        raise UserError("no held-out sentence has all its words in every LM's vocabulary")
    for row, lm in zip(rows, models, strict=True):
        common, everything = compute_ppl(lm, in_vocabulary), compute_ppl(lm, lines)
        row["ngrams"] = dict(lm.counts())
        row["arpa_bytes"] = Path(row["arpa"]).stat().st_size
        row["ppl"], row["ppl1"], row["logprob"] = common["ppl"], common["ppl1"], common["logprob"]
        row["oov_words"] = everything["num_oov"]
        row["all_sentences"] = {key: everything[key] for key in ("ppl", "num_zeroprobs", "logprob")}
    return {
        "sentences": len(lines), "words": sum(map(len, heldout)),
        "scored_sentences": len(in_vocabulary), "scored_words": sum(len(s.split()) for s in in_vocabulary),
    }  # fmt: skip


def first_utterances(manifest: str, limit: int | None, folder: Path) -> str:
    """``manifest``, or a copy of its first ``limit`` utterances in ``folder``."""
    if limit is None:
        return manifest
    path = folder / f"{Path(manifest).stem}.first{limit}.jsonl"
    write_manifest(path, read_manifest(manifest)[:limit])
    return str(path)


def word_error_rates(args: argparse.Namespace, row: dict, dev: str, test: str, folder: Path) -> dict:
    """asr-tune-lm on ``dev``, then asr-eval with the chosen weights on ``test``."""
    stem = Path(row["arpa"]).stem
    start = time.perf_counter()
    tuned = tune(TuneConfig(
        model=args.checkpoint, manifest=dev, lm=row["arpa"], lm_weights=args.lm_weights,
        word_scores=args.word_scores, threads=args.threads, output=str(folder / f"{stem}.lm.json"),
    ))  # fmt: skip
    tune_seconds = time.perf_counter() - start
    start = time.perf_counter()
    summary = evaluate(EvalConfig(
        model=args.checkpoint, manifest=test, output=str(folder / f"{stem}.eval.json"),
        decoder=DecoderKind.beam_lm, lm=row["arpa"], tuned=str(folder / f"{stem}.lm.json"),
        threads=args.threads,
    ))  # fmt: skip
    return {
        "lm_weight": tuned["lm_weight"], "word_score": tuned["word_score"], "dev_wer": tuned["dev_wer"],
        "wer": summary["wer"], "cer": summary["cer"], "decoder_rtf": summary["decoder_rtf"],
        "tune_seconds": tune_seconds, "eval_seconds": time.perf_counter() - start,
    }  # fmt: skip


def markdown_table(rows: list[dict]) -> str:
    lines = [
        "| LM | seconds | n-grams by order | ARPA MB | perplexity | OOVs | alpha, beta | dev WER | WER |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        seconds = f"{row['build_seconds']:.2f}" if "build_seconds" in row else f"+{row['prune_seconds']:.2f}"
        wer = row.get("wer")
        weights = f"{wer['lm_weight']:g}, {wer['word_score']:g}" if wer else "-"
        dev_wer, test_wer = (f"{wer['dev_wer']:.2%}", f"{wer['wer']:.2%}") if wer else ("-", "-")
        counts = " / ".join(str(count) for _, count in sorted(row["ngrams"].items()))
        lines.append(
            f"| {row['name']} | {seconds} | {counts} | {row['arpa_bytes'] / 1e6:.2f} | {row['ppl']:.2f}"
            f" | {row['oov_words']} | {weights} | {dev_wer} | {test_wer} |"
        )
    return "\n".join(lines)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    manifests = Path("data/synthetic/manifests")
    parser.add_argument(
        "--train",
        default=str(manifests / "train.jsonl"),
        help="LM training text: a manifest (its transcripts) or one sentence a line",
    )
    parser.add_argument(
        "--heldout",
        default=str(manifests / "test.jsonl"),
        help="held-out manifest (or text, with --no-wer) for perplexity and WER",
    )
    parser.add_argument("--order", type=int, default=3, help="n-gram order")
    parser.add_argument(
        "--prune",
        type=float,
        nargs="*",
        default=[1e-6, 1e-5],
        help="kaldingram entropy-pruning thresholds, each applied to both LMs",
    )
    parser.add_argument("--checkpoint", default="runs/demo/checkpoints/best.pt", help="acoustic model")
    parser.add_argument("--dev", default=str(manifests / "dev.jsonl"), help="manifest to tune alpha, beta on")
    parser.add_argument("--no-wer", action="store_true", help="perplexity only, no decoding")
    parser.add_argument("--limit", type=int, help="decode only the first N utterances of each manifest")
    parser.add_argument(
        "--lm-weights",
        type=float,
        nargs="+",
        default=TuneConfig().lm_weights,
        help="alpha grid (asr-tune-lm's default)",
    )
    parser.add_argument(
        "--word-scores",
        type=float,
        nargs="+",
        default=TuneConfig().word_scores,
        help="beta grid (asr-tune-lm's default)",
    )
    parser.add_argument("--threads", type=int, help="CPU threads for decoding (None: torch's own)")
    parser.add_argument("--workdir", help="keep ARPA files and decoding outputs here (None: a temp dir)")
    parser.add_argument("--output", default=str(OUTPUT), help="JSON summary")
    return parser.parse_args()


@exit_on_user_error
def main() -> None:
    args = parse_args()
    if not args.no_wer and not Path(args.checkpoint).is_file():
        raise UserError(f"--checkpoint {args.checkpoint}: no such file (--no-wer skips the WER part)")
    if not 2 <= args.order <= 5:  # at order 1, ``kaldingram train`` reads only each line's first word
        raise UserError(f"--order {args.order}: kaldingram trains orders 2 to 5")
    if args.limit is not None and args.limit < 1:
        raise UserError(f"--limit {args.limit}: must be at least 1")
    train_sentences, heldout = read_sentences(args.train), read_sentences(args.heldout)
    with contextlib.ExitStack() as stack:
        folder = Path(args.workdir or stack.enter_context(tempfile.TemporaryDirectory(prefix="compare-lm-")))
        folder.mkdir(parents=True, exist_ok=True)
        rows = []
        for name, build in (("asr-build-lm", build_ours), ("kaldingram", build_kaldingram)):
            arpa = folder / f"{name}.arpa"
            seconds = build(train_sentences, args.order, arpa)
            rows.append({"name": name, "arpa": str(arpa), "build_seconds": seconds})
        for base in list(rows):
            for threshold in args.prune:
                arpa = folder / f"{Path(base['arpa']).stem}.prune{threshold:g}.arpa"
                seconds = prune(Path(base["arpa"]), threshold, arpa)
                rows.append({"name": f"{base['name']}, pruned {threshold:g}", "arpa": str(arpa),
                             "prune_threshold": threshold, "prune_seconds": seconds})  # fmt: skip
        scored = score(rows, heldout)
        settings = {
            "train": args.train, "heldout": args.heldout, "order": args.order,
            "train_sentences": len(train_sentences), "kaldingram": version("kaldingram"),
            "perplexity": "kaldingram ppl: </s> counted, <s> not; sentences with an OOV for any LM left out",
            "checkpoint": None if args.no_wer else args.checkpoint, "dev": None if args.no_wer else args.dev,
            "limit": args.limit, "lm_weights": args.lm_weights, "word_scores": args.word_scores,
        }  # fmt: skip
        result = {"settings": settings, "heldout": scored, "rows": rows}
        write_json(args.output, result)
        left_out = scored["sentences"] - scored["scored_sentences"]
        print(f"perplexity of {scored['scored_sentences']} held-out sentences, {scored['scored_words']} words"
              + (f"; {left_out} with an OOV left out" if left_out else ""))  # fmt: skip
        print(markdown_table(rows), flush=True)
        if not args.no_wer:
            dev = first_utterances(args.dev, args.limit, folder)
            test = first_utterances(args.heldout, args.limit, folder)
            greedy = evaluate(EvalConfig(model=args.checkpoint, manifest=test, threads=args.threads,
                                         output=str(folder / "greedy.eval.json")))  # fmt: skip
            result["greedy_wer"] = greedy["wer"]
            for row in rows:
                print(f"--- {row['name']}", flush=True)
                row["wer"] = word_error_rates(args, row, dev, test, folder)
                write_json(args.output, result)
            print(f"\ngreedy decoding (no LM): WER {greedy['wer']:.2%}")
            print(markdown_table(rows))
        if args.workdir is None:
            for row in rows:
                row["arpa"] = Path(row["arpa"]).name  # the temp dir is gone
            write_json(args.output, result)
    print(f"-> {args.output}")


if __name__ == "__main__":
    main()
