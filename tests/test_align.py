import torch

from asr.ctc.alignment import WordTime, align_words, boundary_errors, ctm_lines, srt
from asr.text import CharTokenizer
from tests.test_lm import emissions_for


def test_words_start_at_their_first_token_frame():
    tokenizer = CharTokenizer()
    log_probs = emissions_for("the cat", tokenizer, noise=0.1, seed=0)  # 3 frames a token
    words = align_words(log_probs, tokenizer.encode(" the cat "), tokenizer, frame_seconds=0.04)
    assert [w.word for w in words] == ["the", "cat"]
    # frames: t t _ h h _ e e _ |space| |space| _ c c _ a a _ t t _; frame k spans (k +- 0.5) * 40 ms
    assert words[0].start == 0.0 and words[0].end == round(7.5 * 0.04, 3)  # "e" ends with frame 7
    assert words[1].start == round(8.5 * 0.04, 3), "a word starts with the boundary token before it"
    assert words[1].end == round(19.5 * 0.04, 3)


def test_a_transcript_longer_than_the_audio_has_no_alignment():
    tokenizer = CharTokenizer()
    assert (
        align_words(
            torch.zeros(3, len(tokenizer)).log_softmax(-1), tokenizer.encode("hello"), tokenizer, 0.04
        )
        is None
    )
    assert align_words(torch.zeros(3, len(tokenizer)), tokenizer.encode(" "), tokenizer, 0.04) == []


def test_ctm_srt_and_boundary_errors():
    words = [WordTime("hello", 0.5, 0.9), WordTime("there", 1.0, 1.4), WordTime("again", 3.0, 3.5)]
    assert ctm_lines("utt1", words[:1]) == "utt1 1 0.500 0.400 hello\n"
    assert srt(words) == (
        "1\n00:00:00,500 --> 00:00:01,400\nhello there\n\n2\n00:00:03,000 --> 00:00:03,500\nagain\n"
    )
    assert srt(words, max_words=1).count("-->") == 3
    errors = boundary_errors(words, [("Hello", 0.52), ("there", 0.9), ("again", 3.0)])
    assert [round(e, 3) for e in errors] == [0.02, 0.1, 0.0]
    assert boundary_errors(words, [("hello", 0.5), ("again", 2.9)]) == [0.0, words[2].start - 2.9]
