"""An online suffix automaton over a token sequence, as used by SAM-Decoding.

Each state stands for a set of substrings that end at the same positions. Besides the usual
``length``/``link``/``next``, every state keeps ``last_end``: the most recent position where
its substrings end. Appending a token walks the suffix-link chain of the new state (the
states whose substrings now also end at the new position), which also yields, for free, every
earlier occurrence worth drafting from: for each suffix length that occurred before, where it
last ended.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class _State:
    length: int
    link: int
    last_end: int
    next: dict[int, int] = field(default_factory=dict)


class SuffixAutomaton:
    """Append-only suffix automaton with the latest earlier match of the current suffix."""

    def __init__(self) -> None:
        self.text: list[int] = []
        self._states = [_State(length=0, link=-1, last_end=-1)]
        self._last = 0
        self.matches: list[tuple[int, int]] = []

    def __len__(self) -> int:
        return len(self.text)

    def extend(self, tokens: list[int]) -> None:
        for token in tokens:
            self.append(token)

    def append(self, token: int) -> None:
        """Add ``token`` at position ``len(self)`` and update :attr:`matches`.

        After the call, ``matches`` lists ``(length, end)`` for every suffix length of the text
        that also occurred earlier (longest first, ``length >= 1``): the suffix of that length
        last ended at ``end < len(self) - 1``, so ``text[end + 1:]`` is what followed it.
        """
        states = self._states
        pos = len(self.text)
        self.text.append(token)
        cur = len(states)
        states.append(_State(length=states[self._last].length + 1, link=0, last_end=pos))
        p = self._last
        while p != -1 and token not in states[p].next:
            states[p].next[token] = cur
            p = states[p].link
        if p != -1:
            q = states[p].next[token]
            if states[p].length + 1 == states[q].length:
                states[cur].link = q
            else:
                clone = len(states)
                states.append(
                    _State(
                        length=states[p].length + 1,
                        link=states[q].link,
                        last_end=states[q].last_end,
                        next=dict(states[q].next),
                    )
                )
                while p != -1 and states[p].next.get(token) == q:
                    states[p].next[token] = clone
                    p = states[p].link
                states[q].link = clone
                states[cur].link = clone
        self._last = cur
        # The states on cur's suffix-link chain now also end at pos: note where they ended
        # before (the earlier occurrences to draft from), then move their last end to pos.
        self.matches = []
        s = states[cur].link
        while s > 0:
            self.matches.append((states[s].length, states[s].last_end))
            states[s].last_end = pos
            s = states[s].link
