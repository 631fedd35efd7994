"""Fuzzing harnesses (atheris) for relay's input decoders; see docs/fuzzing.md."""

import os

#: the committed seed corpus, one folder per target
CORPUS = os.path.join(os.path.dirname(__file__), "corpus")
