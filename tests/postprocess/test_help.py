"""`reidkit postprocess --help` explains every chain parameter with its default, and the file it writes."""
import argparse
import re

import pytest

from reidkit.cli import main as reidkit_main
from reidkit.postprocess.cli import add_arguments


def chain_parameters():
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    group = next(g for g in parser._action_groups if g.title.startswith("chain parameters"))
    return [(a.option_strings[0], a.default) for a in group._group_actions]


def option_blocks(text):
    """{flag: its usage and help joined on one line} for every option of the help text."""
    blocks, current = {}, None
    for line in text.splitlines():
        if line.startswith("  -"):
            current = line.split()[0].rstrip(",")
            blocks[current] = line.strip()
        elif current and line.startswith(" " * 8) and line.strip():
            blocks[current] += " " + line.strip()
        else:
            current = None
    return blocks


def help_text(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # one line per option
    with pytest.raises(SystemExit) as done:
        reidkit_main(["postprocess", "--help"])
    assert done.value.code == 0
    return capsys.readouterr().out


def test_help_names_every_chain_parameter_with_its_meaning_and_default(capsys, monkeypatch):
    text = help_text(capsys, monkeypatch)
    parameters = chain_parameters()
    assert len(parameters) == 14
    blocks = option_blocks(text)
    for flag, default in parameters:
        assert flag in blocks, flag
        block = blocks[flag]
        assert block.endswith(f"(default: {default})"), block
        meaning = block.split(None, 2)[2].rsplit("(default:", 1)[0].strip()
        assert len(meaning.split()) >= 3, f"{flag} has no explanation: {block}"
    assert "(default: track2.txt, in the working directory)" in text


def test_help_sentences_are_complete(capsys, monkeypatch):
    text = help_text(capsys, monkeypatch)
    epilog = text.split("example:", 1)[1]
    paragraphs = [p for p in re.split(r"\n\s*\n", epilog) if p.strip()]
    assert paragraphs and all(p.rstrip().endswith((".", ")")) or p.lstrip().startswith("reidkit")
                              for p in paragraphs)
    assert "--crop-features" in text
