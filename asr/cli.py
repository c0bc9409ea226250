"""One grammar for every command: ``key=value`` options over a dataclass schema.

Each tool declares its options once, as a dataclass whose fields carry their defaults and, in a
string under the field, their description; ``--help`` is generated from that. Lists are written
``key=[a,b]``, nested options ``key.sub=value``; a tool may also take bare words as the values of
one list option (``asr-transcribe model=best.pt a.wav b.wav``). An unknown option is a one-line
error naming the nearest known one. ``asr <command> ...`` runs any tool; the ``asr-<command>``
scripts are the same tools.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import importlib
import inspect
import sys
import textwrap
import typing
from collections.abc import Callable, Sequence
from enum import Enum
from typing import Any

from omegaconf import MISSING, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from asr.errors import UserError

TOOLS = {  # name: (module, function, one line)
    "train": ("asr.train.cli", "main", "train a model (a Hydra app: config groups and key=value)"),
    "eval": ("asr.evaluate", "main", "WER / CER of a model on a manifest"),
    "transcribe": ("asr.transcribe", "main", "transcripts and word times of audio files"),
    "align": ("asr.align", "main", "word times of a manifest's transcripts (CTM)"),
    "export": ("asr.export", "main", "a model as ONNX or TorchScript, with its tokenizer"),
    "serve": ("asr.serve", "main", "an HTTP transcription service with a web page"),
    "validate": ("asr.data.validate", "main", "find the utterances of a manifest that would spoil training"),
    "average": ("asr.train.average", "main", "average checkpoints' weights"),
    "build-lm": ("asr.lm.ngram", "main", "an n-gram language model (ARPA) from transcripts"),
    "tune-lm": ("asr.lm.tune", "main", "choose the LM weight and word score on a dev set"),
    "synth": ("asr.data.synthetic", "main", "synthesise the built-in corpus (and a LibriSpeech rehearsal)"),
}


@dataclasses.dataclass(frozen=True)
class Option:
    name: str
    type: str
    default: str
    doc: str


def field_docs(cls: type) -> dict[str, str]:
    """The string written under each field of a dataclass (and of its bases), by field name."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            body = ast.parse(textwrap.dedent(inspect.getsource(klass))).body[0].body
        except (OSError, TypeError, IndexError):
            continue
        for node, after in zip(body, body[1:], strict=False):
            if (
                isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
                and isinstance(after.value.value, str)
            ):  # fmt: skip
                docs[node.target.id] = " ".join(after.value.value.split())
    return docs


def _default(field: dataclasses.Field) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return MISSING


def _shown(value: Any) -> str:
    if isinstance(value, Enum):
        return str(value.value)
    if value is MISSING or value == MISSING:
        return "(required)"
    return "null" if value is None else str(value).replace(" ", "")


def options(schema: type, prefix: str = "") -> list[Option]:
    """Every option of ``schema``, nested dataclasses as ``parent.child``; an optional one
    (``data.synthetic``, None unless a config group sets it) both ways."""
    found = []
    docs = field_docs(schema)
    hints = typing.get_type_hints(schema)
    for field in dataclasses.fields(schema):
        default = _default(field)
        name = f"{prefix}{field.name}"
        if dataclasses.is_dataclass(default):
            found += options(type(default), f"{name}.")
            continue
        nested = [t for t in typing.get_args(hints[field.name]) if dataclasses.is_dataclass(t)]
        if default is None and nested:
            found += options(nested[0], f"{name}.")
        kind = field.type if isinstance(field.type, str) else getattr(field.type, "__name__", str(field.type))
        if isinstance(default, Enum):
            kind = " | ".join(member.value for member in type(default))
        found.append(Option(name, kind, _shown(default), docs.get(field.name, "")))
    return found


def help_text(prog: str, description: str, schema: type, positional: str | None = None) -> str:
    rows = options(schema)
    width = max(len(f"{o.name}={o.default}") for o in rows)
    usage = f"usage: {prog} key=value ..." + (f" [{positional} ...]" if positional else "")
    lines = [usage, "", description.strip(), "", "options (key=default):"]
    for option in rows:
        lines.append(f"  {option.name + '=' + option.default:<{width}}  {option.type}")
        if option.doc:
            lines += [f"      {line}" for line in textwrap.wrap(option.doc, 90)]
    if positional:
        lines += ["", f"Bare words (not key=value) give {positional}."]
    return "\n".join(lines) + "\n"


def suggest(key: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.5)
    return f"; did you mean {close[0]}?" if close else ""


def parse(schema: type, argv: Sequence[str], positional: str | None = None, prog: str = ""):
    """``key=value`` arguments (and bare words, for ``positional``) checked against ``schema``."""
    known = [option.name for option in options(schema)]
    pairs, words = [], []
    for argument in argv:
        if "=" in argument and not argument.startswith("="):
            key = argument.split("=", 1)[0]
            if key not in known and not any(name.startswith(f"{key}.") for name in known):
                raise UserError(f"unknown option {key!r}{suggest(key, known)} ({prog} --help lists them)")
            pairs.append(argument)
        elif positional is not None:
            words.append(argument)
        else:
            raise UserError(f"{argument!r}: options are key=value ({prog} --help lists them)")
    try:
        cfg = OmegaConf.merge(OmegaConf.structured(schema), OmegaConf.from_dotlist(pairs))
        if words:
            current = OmegaConf.select(cfg, positional)
            if OmegaConf.is_list(current):
                OmegaConf.update(cfg, positional, [*current, *words], merge=False)
            elif len(words) == 1:
                OmegaConf.update(cfg, positional, words[0], merge=False)
            else:
                raise UserError(f"{' '.join(words)}: one value of {positional} expected")
        missing = sorted(OmegaConf.missing_keys(cfg))
        if missing:
            raise UserError(f"missing required option(s): {', '.join(f'{key}=...' for key in missing)}")
        return cfg
    except OmegaConfBaseException as error:
        raise UserError(str(error).splitlines()[0]) from None


def run_tool(
    prog: str, schema: type, function: Callable[[Any], Any], argv: Sequence[str] | None = None,
    positional: str | None = None,
) -> Any:  # fmt: skip
    """The body of a tool's ``main``: ``--help``, parsing, then ``function(cfg)``; a ``UserError`` is
    one line on stderr and exit status 2."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if {"-h", "--help"} & set(argv):
        description = sys.modules[function.__module__].__doc__ or ""
        print(help_text(prog, description, schema, positional), end="")
        sys.exit(0)
    try:
        return function(parse(schema, argv, positional, prog))
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)


def main(argv: list[str] | None = None) -> None:
    """``asr <command> [key=value ...]``: any tool by name."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in TOOLS:
        width = max(map(len, TOOLS))
        listing = "\n".join(f"  {name:<{width}}  {line}" for name, (_, _, line) in TOOLS.items())
        print(f"usage: asr <command> [key=value ...]   (asr <command> --help for its options)\n\n{listing}")
        if argv and argv[0] not in ("-h", "--help"):
            print(f"\nerror: unknown command {argv[0]!r}{suggest(argv[0], list(TOOLS))}", file=sys.stderr)
            sys.exit(2)
        return
    module, function, _ = TOOLS[argv[0]]
    sys.argv = [f"asr-{argv[0]}", *argv[1:]]
    getattr(importlib.import_module(module), function)()
