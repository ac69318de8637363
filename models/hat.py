"""HAT: a Hierarchical Autoregressive Transformer, small enough to read top to bottom.

After Neitemeier et al., "Hierarchical Autoregressive Transformers: Combining Byte- and
Word-Level Processing for Robust, Adaptable Language Models" (ICLR 2025).

    text --hat_splitter--> words --UTF-8--> bytes of each word
    encoder   a small causal byte transformer run inside each word; the hidden state at a trailing
              [WORD] symbol summarises the word (optionally with the mean of its byte states) and is
              projected to the backbone width
    backbone  a causal transformer over word vectors; its output at word t summarises words < t+1
    decoder   a small causal byte transformer that spells word t+1 from backbone output t
              (given as its first position, or first few), ending each word with [EOW]

The three stacks are transformers' `LlamaModel`s, so they bring RoPE, RMSNorm, SwiGLU, sdpa/eager
attention and the KV cache. Words never attend to each other below the backbone, so the encoder and
decoder run on all words of a batch at once as short sequences, bucketed by length to avoid padding
everything to the longest word.

Probabilities are exact over legal word spellings: a word has 1..max_word_bytes bytes followed by
[EOW], so [EOW] is masked at the first position and every byte is masked once a word is full.
The probability of a text is that of its canonical segmentation (a lower bound on the total over
segmentations; bits per byte computed from it are therefore an upper bound).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    DynamicCache,
    LlamaConfig,
    LlamaModel,
    PreTrainedConfig,
    PreTrainedModel,
)

PAD, WORD, EOW = 256, 257, 258  # byte symbols 0..255, then the three specials
BYTE_VOCAB = 259
BUCKETS = (4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256)  # padded lengths for word batches


class HATConfig(PreTrainedConfig):
    """Sizes of the three stacks and the word limit. All stacks use 64-dimensional heads by default."""

    model_type = "hat"

    max_word_bytes: int = 16
    encoder_hidden_size: int = 128
    encoder_layers: int = 2
    encoder_heads: int = 2
    encoder_intermediate_size: int = 352
    backbone_hidden_size: int = 256
    backbone_layers: int = 6
    backbone_heads: int = 4
    backbone_intermediate_size: int = 704
    decoder_hidden_size: int = 128
    decoder_layers: int = 2
    decoder_heads: int = 2
    decoder_intermediate_size: int = 352
    max_words: int = 4096
    # The interfaces between the narrow byte stacks and the wide backbone. With the defaults a word
    # reaches the backbone as one encoder state (rank <= encoder width) and the backbone's output
    # reaches the decoder as one decoder-width position. `encoder_mean_pool` adds the mean of the
    # word's byte states to the [WORD] state (concatenated, then projected); `decoder_context_slots`
    # > 1 maps the backbone output to that many decoder positions, so a 256-wide context is not
    # squeezed into 128 numbers. See docs/design.md for what they bought in training.
    encoder_mean_pool: bool = False
    decoder_context_slots: int = 1
    rope_theta: float = 10000.0
    rms_norm_eps: float = 1e-6
    initializer_range: float = 0.02
    tie_word_embeddings: bool = False

    def stack_config(self, part: str) -> LlamaConfig:
        """The `LlamaConfig` of one stack: "encoder", "backbone" or "decoder"."""
        hidden = getattr(self, f"{part}_hidden_size")
        return LlamaConfig(
            # The backbone reads word vectors, not ids: a 1-row table keeps LlamaModel happy.
            vocab_size=1 if part == "backbone" else BYTE_VOCAB,
            hidden_size=hidden,
            intermediate_size=getattr(self, f"{part}_intermediate_size"),
            num_hidden_layers=getattr(self, f"{part}_layers"),
            num_attention_heads=getattr(self, f"{part}_heads"),
            max_position_embeddings=self.max_words if part == "backbone" else self.max_word_bytes + 2,
            rms_norm_eps=self.rms_norm_eps,
            initializer_range=self.initializer_range,
            rope_parameters={"rope_type": "default", "rope_theta": self.rope_theta},
            pad_token_id=None,
            bos_token_id=None,
            eos_token_id=None,
            # The encoder and decoder attend within a word: thousands of sequences of 2-24
            # positions per batch, where eager attention beats sdpa (whose CPU kernel's backward
            # took a quarter of a hat-tiny training step); the backbone keeps the configured one.
            attn_implementation=(self._attn_implementation or "sdpa") if part == "backbone" else "eager",
        )


@dataclass
class HATBatch:
    """Words of several sequences, flattened: the bytes of all words back to back."""

    byte_ids: torch.Tensor  # (total_bytes,) long, values 0..255
    word_lengths: torch.Tensor  # (num_words,) long, each in 1..max_word_bytes
    words_per_seq: torch.Tensor  # (batch,) long

    def to(self, device: torch.device | str) -> HATBatch:
        return HATBatch(self.byte_ids.to(device), self.word_lengths.to(device), self.words_per_seq.to(device))

    @property
    def num_bytes(self) -> int:
        return int(self.byte_ids.numel())


@dataclass
class HATOutput:
    loss: torch.Tensor | None = None  # mean negative log-likelihood per byte of text (nats)
    total_nll: torch.Tensor | None = None  # summed over every scored symbol (nats)
    symbol_logprobs: torch.Tensor | None = None  # (num_words, max_len + 1): bytes then [EOW], 0 on padding
    symbol_entropy: torch.Tensor | None = None  # same shape: entropy (nats) of each predictive distribution
    scored: torch.Tensor | None = None  # same shape, bool: which entries count


@dataclass
class HATAttentions:
    """Attention weights of every level for one text (eager attention)."""

    words: list[bytes]
    encoder: list[list[torch.Tensor]] = field(default_factory=list)  # [word][layer] (heads, n+1, n+1)
    backbone: list[torch.Tensor] = field(default_factory=list)  # [layer] (heads, W, W); row t = [BOS], w0..
    decoder: list[list[torch.Tensor]] = field(default_factory=list)  # [word][layer] (heads, n+1, n+1)


def _bucket_length(n: int) -> int:
    for b in BUCKETS:
        if b >= n:
            return b
    return n


def length_buckets(lengths: torch.Tensor) -> list[tuple[int, torch.Tensor]]:
    """Group indices of `lengths` by padded length; one group = one batched stack call."""
    padded = torch.tensor([_bucket_length(int(n)) for n in torch.unique(lengths)])
    table = dict(zip(torch.unique(lengths).tolist(), padded.tolist(), strict=True))
    keys = torch.tensor([table[int(n)] for n in lengths.tolist()]) if len(lengths) else lengths
    return [(int(b), torch.nonzero(keys == b).flatten()) for b in torch.unique(keys).tolist()]


class HATPreTrainedModel(PreTrainedModel):
    config: HATConfig
    config_class = HATConfig
    base_model_prefix = "hat"
    _supports_sdpa = True
    _no_split_modules = ("LlamaDecoderLayer",)

    def _init_weights(self, module: nn.Module) -> None:
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=std)
        elif isinstance(module, HATForCausalLM):
            nn.init.normal_(module.bos_word, mean=0.0, std=std)
        elif hasattr(module, "weight") and module.__class__.__name__.endswith("RMSNorm"):
            nn.init.ones_(module.weight)


class HATForCausalLM(HATPreTrainedModel):
    def __init__(self, config: HATConfig):
        super().__init__(config)
        if config.decoder_context_slots < 1:
            raise ValueError(f"decoder_context_slots must be at least 1, got {config.decoder_context_slots}")
        self.encoder = LlamaModel(config.stack_config("encoder"))
        summary_width = config.encoder_hidden_size * (2 if config.encoder_mean_pool else 1)
        self.encoder_to_backbone = nn.Linear(summary_width, config.backbone_hidden_size, bias=False)
        self.bos_word = nn.Parameter(torch.zeros(config.backbone_hidden_size))
        self.backbone = LlamaModel(config.stack_config("backbone"))
        self.backbone_to_decoder = nn.Linear(
            config.backbone_hidden_size, config.decoder_context_slots * config.decoder_hidden_size, bias=False
        )
        self.decoder = LlamaModel(config.stack_config("decoder"))
        self.lm_head = nn.Linear(config.decoder_hidden_size, BYTE_VOCAB, bias=False)
        self._splitter = None
        self.post_init()

    # ----------------------------------------------------------------- words

    def split(self, text: str) -> list[bytes]:
        """The paper's splitter, with words capped at `max_word_bytes` bytes."""
        if self._splitter is None:
            from hat_splitter import HATSplitter

            self._splitter = HATSplitter()
        return self._splitter.split_with_limit(text, self.config.max_word_bytes) if text else []

    def batch_from_words(self, sequences: Sequence[Sequence[bytes]]) -> HATBatch:
        flat = b"".join(b"".join(words) for words in sequences)
        lengths = [len(w) for words in sequences for w in words]
        if any(n < 1 or n > self.config.max_word_bytes for n in lengths):
            raise ValueError(f"every word must have 1..{self.config.max_word_bytes} bytes")
        return HATBatch(
            byte_ids=torch.frombuffer(bytearray(flat), dtype=torch.uint8).long()
            if flat
            else torch.zeros(0, dtype=torch.long),
            word_lengths=torch.tensor(lengths, dtype=torch.long),
            words_per_seq=torch.tensor([len(words) for words in sequences], dtype=torch.long),
        )

    def batch_from_texts(self, texts: Sequence[str]) -> HATBatch:
        return self.batch_from_words([self.split(t) for t in texts])

    @staticmethod
    def word_matrix(byte_ids: torch.Tensor, starts: torch.Tensor, lengths: torch.Tensor, width: int) -> torch.Tensor:
        """Bytes of the chosen words as rows of `width`, PAD after each word's end."""
        cols = torch.arange(width, device=byte_ids.device)
        pos = (starts[:, None] + cols[None, :]).clamp(max=max(byte_ids.numel() - 1, 0))
        rows = byte_ids[pos] if byte_ids.numel() else torch.zeros_like(pos)
        return torch.where(cols[None, :] < lengths[:, None], rows, torch.full_like(rows, PAD))

    def _legal_logits(self, logits: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """Mask symbols that can never come next: PAD/WORD always, EOW first, bytes once a word is full."""
        mask = torch.zeros_like(logits, dtype=torch.bool)
        mask[..., PAD] = True
        mask[..., WORD] = True
        mask[..., EOW] |= positions == 0
        mask[..., :256] |= (positions >= self.config.max_word_bytes)[..., None]
        return logits.masked_fill(mask, float("-inf"))

    # ----------------------------------------------------------------- stacks

    def encode_words(
        self, byte_ids: torch.Tensor, starts: torch.Tensor, lengths: torch.Tensor, output_attentions: bool = False
    ) -> tuple[torch.Tensor, list[list[torch.Tensor]]]:
        """One vector per word (backbone width): encoder state at the trailing [WORD] symbol (and, with
        `encoder_mean_pool`, the mean of the word's byte states beside it), projected."""
        vectors = torch.empty(len(lengths), self.config.backbone_hidden_size, device=byte_ids.device)
        attentions: list[list[torch.Tensor]] = [[] for _ in range(len(lengths))]
        for width, idx in length_buckets(lengths + 1):
            rows = self.word_matrix(byte_ids, starts[idx], lengths[idx], width)
            rows[torch.arange(len(idx)), lengths[idx]] = WORD
            out = self.encoder(input_ids=rows, output_attentions=output_attentions)
            states = out.last_hidden_state
            summary = states[torch.arange(len(idx)), lengths[idx]]
            if self.config.encoder_mean_pool:
                inside = (torch.arange(width, device=states.device)[None, :] < lengths[idx][:, None]).to(states.dtype)
                mean = (states * inside[..., None]).sum(1) / lengths[idx][:, None].to(states.dtype)
                summary = torch.cat([summary, mean], -1)
            vectors[idx] = self.encoder_to_backbone(summary).to(vectors.dtype)
            if output_attentions:
                for j, w in enumerate(idx.tolist()):
                    n = int(lengths[w]) + 1
                    attentions[w] = [a[j, :, :n, :n] for a in out.attentions]
        return vectors, attentions

    def run_backbone(
        self, word_vectors: torch.Tensor, words_per_seq: torch.Tensor, output_attentions: bool = False
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Backbone over [BOS], w_0 .. w_{n-2} of each sequence; output t predicts word t."""
        batch, longest = len(words_per_seq), int(words_per_seq.max()) if len(words_per_seq) else 0
        seq = self.bos_word.expand(batch, longest, -1).clone().to(word_vectors.dtype)
        seq_idx = torch.repeat_interleave(torch.arange(batch, device=word_vectors.device), words_per_seq)
        first = torch.cumsum(words_per_seq, 0) - words_per_seq
        pos = torch.arange(len(seq_idx), device=word_vectors.device) - first[seq_idx]
        keep = pos + 1 < longest  # the last word of the longest sequence feeds nothing
        seq[seq_idx[keep], pos[keep] + 1] = word_vectors[keep]
        # Right padding is harmless: attention is causal and padded outputs are never read.
        out = self.backbone(inputs_embeds=seq, output_attentions=output_attentions)
        attentions = [a[0] for a in out.attentions] if output_attentions else []
        return out.last_hidden_state[seq_idx, pos], attentions

    def decode_words(
        self,
        contexts: torch.Tensor,
        byte_ids: torch.Tensor,
        starts: torch.Tensor,
        lengths: torch.Tensor,
        output_attentions: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor, list[list[torch.Tensor]]]:
        """Log-probabilities and entropies of each word's bytes then [EOW], from its backbone context."""
        longest = int(lengths.max()) + 1 if len(lengths) else 1
        logprobs = torch.zeros(len(lengths), longest, device=contexts.device)
        entropy = torch.zeros_like(logprobs)
        attentions: list[list[torch.Tensor]] = [[] for _ in range(len(lengths))]
        for width, idx in length_buckets(lengths + 1):
            rows = self.word_matrix(byte_ids, starts[idx], lengths[idx], width)
            targets = rows.clone()
            targets[torch.arange(len(idx)), lengths[idx]] = EOW
            logits, att = self.decoder_logits(self.backbone_to_decoder(contexts[idx]), rows, output_attentions)
            logp = F.log_softmax(logits, -1)
            picked = logp.gather(-1, targets.clamp(max=BYTE_VOCAB - 1).unsqueeze(-1)).squeeze(-1)
            ent = -(logp.exp() * logp.nan_to_num(neginf=0.0)).sum(-1)
            n = min(width, longest)
            logprobs[idx, :n] = picked[:, :n]
            entropy[idx, :n] = ent[:, :n]
            if output_attentions:
                slots = self.config.decoder_context_slots
                for j, w in enumerate(idx.tolist()):
                    m = int(lengths[w]) + slots
                    attentions[w] = [a[j, :, :m, :m] for a in att]
        cols = torch.arange(longest, device=contexts.device)
        valid = cols[None, :] <= lengths[:, None]
        return logprobs.masked_fill(~valid, 0.0), entropy.masked_fill(~valid, 0.0), attentions

    def decoder_inputs(
        self, context: torch.Tensor, byte_rows: torch.Tensor, context_position: bool = True
    ) -> torch.Tensor:
        """Decoder input embeddings: the context's slots then the bytes spelled so far, one row per word.

        `context` is the backbone output already projected by `backbone_to_decoder`, shape
        (words, slots * width); it becomes `decoder_context_slots` positions.
        (Adding it to every byte embedding as well, as MEGABYTE does, trained worse here: +0.19
        bits per byte after 1.3 MB of text, with the same budget.)
        """
        embeds = self.decoder.embed_tokens(byte_rows.clamp(max=BYTE_VOCAB - 1))
        if not context_position:
            return embeds
        prefix = context.reshape(len(context), self.config.decoder_context_slots, -1).to(embeds.dtype)
        return torch.cat([prefix, embeds], 1)

    def decoder_logits(
        self, context: torch.Tensor, byte_rows: torch.Tensor, output_attentions: bool = False
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """Legal logits for every symbol of words spelled as `byte_rows` (words, width), PAD-filled:
        position i predicts byte i (or [EOW] after the last). `context` as for `decoder_inputs`.
        Also returns the decoder's attention weights (over the context slots and bytes) if asked."""
        width = byte_rows.shape[1]
        # The byte at position width-1 is never needed as input: nothing after it is predicted.
        out = self.decoder(
            inputs_embeds=self.decoder_inputs(context, byte_rows[:, : width - 1]), output_attentions=output_attentions
        )
        hidden = out.last_hidden_state[:, self.config.decoder_context_slots - 1 :]
        positions = torch.arange(width, device=byte_rows.device).expand(len(byte_rows), -1)
        logits = self._legal_logits(self.lm_head(hidden).float(), positions)
        return logits, (out.attentions if output_attentions else ())

    # ----------------------------------------------------------------- forward

    def forward(
        self,
        batch: HATBatch,
        score_final_eow: bool = True,
        output_attentions: bool = False,
        return_details: bool = False,
    ) -> HATOutput:
        """Negative log-likelihood of every byte of the batch (and of each word's [EOW]).

        `score_final_eow=False` leaves out the [EOW] after the last word of each sequence: use it to
        score a text as a prefix (it may go on), so every byte is predicted once and nothing more.
        """
        lengths = batch.word_lengths
        starts = torch.cumsum(lengths, 0) - lengths
        vectors, _ = self.encode_words(batch.byte_ids, starts, lengths)
        contexts, _ = self.run_backbone(vectors, batch.words_per_seq)
        logprobs, entropy, _ = self.decode_words(contexts, batch.byte_ids, starts, lengths)
        cols = torch.arange(logprobs.shape[1], device=logprobs.device)
        scored = cols[None, :] <= lengths[:, None]
        if not score_final_eow:
            last = torch.cumsum(batch.words_per_seq, 0) - 1
            scored[last[batch.words_per_seq > 0], lengths[last[batch.words_per_seq > 0]]] = False
        total = -(logprobs * scored).sum()
        out = HATOutput(loss=total / max(batch.num_bytes, 1), total_nll=total)
        if return_details:
            out.symbol_logprobs, out.symbol_entropy, out.scored = logprobs, entropy, scored
        return out

    @torch.no_grad()
    def attention_maps(self, text: str) -> HATAttentions:
        """Eager attention weights of encoder, backbone and decoder on `text`."""
        words = self.split(text)
        batch = self.batch_from_words([words]).to(self.device)
        previous = {m: m.config._attn_implementation for m in (self.encoder, self.backbone, self.decoder)}
        try:
            for m in previous:
                m.set_attn_implementation("eager")
            lengths = batch.word_lengths
            starts = torch.cumsum(lengths, 0) - lengths
            vectors, enc = self.encode_words(batch.byte_ids, starts, lengths, output_attentions=True)
            contexts, bb = self.run_backbone(vectors, batch.words_per_seq, output_attentions=True)
            _, _, dec = self.decode_words(contexts, batch.byte_ids, starts, lengths, output_attentions=True)
        finally:
            for m, impl in previous.items():
                m.set_attn_implementation(impl)
        return HATAttentions(words=words, encoder=enc, backbone=bb, decoder=dec)

    # ----------------------------------------------------------------- generation

    def _sample(self, logits: torch.Tensor, temperature: float, top_k: int, top_p: float, generator) -> int:
        if temperature <= 0:
            return int(logits.argmax())
        logits = logits / temperature
        if top_k > 0:
            kth = torch.topk(logits, min(top_k, logits.numel())).values[-1]
            logits = logits.masked_fill(logits < kth, float("-inf"))
        probs = F.softmax(logits, -1)
        if top_p < 1.0:
            sorted_p, order = probs.sort(descending=True)
            drop = sorted_p.cumsum(0) - sorted_p > top_p
            probs = probs.clone()
            probs[order[drop]] = 0.0
            probs /= probs.sum()
        return int(torch.multinomial(probs, 1, generator=generator))

    def _decoder_logits(self, context: torch.Tensor, spelled: bytes, cache: DynamicCache | None) -> torch.Tensor:
        """Logits of the next symbol of a word whose first bytes are `spelled`."""
        context = context.reshape(1, -1)
        if cache is None:  # recompute the whole word
            ids = torch.tensor([list(spelled)], dtype=torch.long, device=self.device)
            out = self.decoder(inputs_embeds=self.decoder_inputs(context, ids), use_cache=False)
        else:
            seen = cache.get_seq_length()  # context slots + bytes already fed
            new = spelled[max(seen - self.config.decoder_context_slots, 0) :]
            ids = torch.tensor([list(new)], dtype=torch.long, device=self.device)
            inputs = self.decoder_inputs(context, ids, context_position=seen == 0)
            out = self.decoder(inputs_embeds=inputs, past_key_values=cache, use_cache=True)
        position = torch.tensor(len(spelled), device=self.device)
        return self._legal_logits(self.lm_head(out.last_hidden_state[0, -1]).float(), position)

    def word_vectors(self, words: Sequence[bytes]) -> torch.Tensor:
        """Encoder vectors (backbone width) of consecutive `words`, one row per word."""
        batch = self.batch_from_words([list(words)]).to(self.device)
        lengths = batch.word_lengths
        vectors, _ = self.encode_words(batch.byte_ids, torch.cumsum(lengths, 0) - lengths, lengths)
        return vectors

    def spell_word(
        self,
        context: torch.Tensor,
        partial: bytes = b"",
        room: int = 1 << 30,
        temperature: float = 0.0,
        top_k: int = 0,
        top_p: float = 1.0,
        generator: torch.Generator | None = None,
        use_cache: bool = True,
    ) -> bytes:
        """Spell one word from its context (backbone output through `backbone_to_decoder`), continuing `partial`, until [EOW] or
        `room` new bytes; returns the whole word, `partial` included."""
        cache = DynamicCache() if use_cache else None
        spelled = partial
        while len(spelled) - len(partial) < room:
            symbol = self._sample(self._decoder_logits(context, spelled, cache), temperature, top_k, top_p, generator)
            if symbol == EOW:
                break
            spelled += bytes([symbol])
        return spelled

    @torch.no_grad()
    def generate_bytes(
        self,
        prompt: str,
        max_new_bytes: int = 200,
        temperature: float = 0.0,
        top_k: int = 0,
        top_p: float = 1.0,
        stop: Sequence[str] = (),
        use_cache: bool = True,
        seed: int | None = None,
    ) -> bytes:
        """Continue `prompt` byte by byte, a word at a time; returns only the new bytes.

        The prompt's last word may be unfinished ("The qu"), so the decoder continues it rather than
        starting a new word; it may end it at once with [EOW].
        """
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        words = self.split(prompt)
        partial = words.pop() if words else b""
        stops = [s.encode() for s in stop if s]
        backbone_cache = DynamicCache() if use_cache else None

        context_in = self.bos_word.view(1, -1)
        if words:
            context_in = torch.cat([context_in, self.word_vectors(words)], 0)
        new = b""
        while len(new) < max_new_bytes:
            # Backbone: feed the words not seen yet, read the context for the next word.
            if use_cache:
                fresh = context_in[backbone_cache.get_seq_length() :]
                out = self.backbone(inputs_embeds=fresh.unsqueeze(0), past_key_values=backbone_cache, use_cache=True)
            else:
                out = self.backbone(inputs_embeds=context_in.unsqueeze(0), use_cache=False)
            context = self.backbone_to_decoder(out.last_hidden_state[0, -1])
            spelled = self.spell_word(
                context, partial, max_new_bytes - len(new), temperature, top_k, top_p, generator, use_cache
            )
            new += spelled[len(partial) :]
            if any(s in new for s in stops):
                break
            context_in = torch.cat([context_in, self.word_vectors([spelled])], 0)
            partial = b""
        for s in stops:  # cut at the first stop string
            if s in new:
                new = new[: new.index(s)]
        return new

    def generate_text(self, prompt: str, **kwargs) -> str:
        return self.generate_bytes(prompt, **kwargs).decode("utf-8", errors="replace")


AutoConfig.register("hat", HATConfig)
AutoModelForCausalLM.register(HATConfig, HATForCausalLM)
