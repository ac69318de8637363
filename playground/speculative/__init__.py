"""Speculative decoding: draft trees, lossless acceptance, and measurements per step.

Modules: ``tree`` (draft trees and tree-attention inputs), ``modeling`` (running a
transformers model over a tree with a cache; the layer-skip self-draft), ``suffix_automaton``,
``drafters``, ``acceptance``, ``engine`` (the step loop and plain decoding), ``compare`` (a
prompt decoded both ways, as JSON) and ``cli``.
"""
