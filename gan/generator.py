"""The generator G: an LSTM that writes an annotated utterance one (tag, token) step at a time.

Representation — two heads per step, tag first:

    input_s   = [token embedding(token_{s-1}); tag embedding(tag_{s-1}); intent; language]
    h_s       = LSTM(input_s, h_{s-1})
    tag_s     ~ softmax(W_tag h_s)                    masked: IOB2 transitions, intent's slots
    token_s   ~ softmax(W_tok [h_s; emb(tag_s)])     masked: the language's words seen with tag_s

so ``log p(step s) = log p(tag_s | prefix) + log p(token_s | prefix, tag_s)``. An utterance
ends with the EOS tag (its token is EOS); after that only PAD is possible. Impossible tags
(``I-x`` not after ``B-x``/``I-x``, slot types never seen with the intent, tags no word of
the language was seen with, EOS as the first step, anything but EOS at ``max_length``) and
impossible words (of another language, or never seen with the tag in training: no "the" as a
city; ``GanConfig.tie_words_to_tags: false`` drops this one) get probability 0 in training
and sampling alike,
so every sample is well-formed IOB2 by construction and the policy that is trained is the
policy that is sampled.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from gan.lstm import EmbeddingLSTMStep, LSTMState, WeightCache, states_after_each_step
from gan.sampling import Random, RandomStreams, SamplingConfig, pick
from gan.vocab import BOS, BOS_ID, EOS, EOS_ID, PAD, PAD_ID, Vocabulary


class Generator(WeightCache, nn.Module):
    def __init__(self, vocab: Vocabulary, *, embedding_dim: int = 64, tag_dim: int = 16,
                 condition_dim: int = 16, hidden_dim: int = 128, dropout: float = 0.1,
                 max_length: int = 30, embeddings: np.ndarray | None = None,
                 freeze_embeddings: bool = False):
        super().__init__()
        self.max_length = max_length
        self.token_embedding = nn.Embedding(len(vocab.tokens), embedding_dim, padding_idx=PAD_ID)
        if embeddings is not None:
            self.token_embedding.weight.data.copy_(torch.as_tensor(embeddings))
            self.token_embedding.weight.requires_grad_(not freeze_embeddings)
        self.tag_embedding = nn.Embedding(len(vocab.tags), tag_dim)
        self.intent_embedding = nn.Embedding(len(vocab.intents), condition_dim)
        self.language_embedding = nn.Embedding(len(vocab.languages), condition_dim)
        self.lstm = nn.LSTM(embedding_dim + tag_dim + 2 * condition_dim, hidden_dim,
                            batch_first=True)
        self.dropout = nn.Dropout(dropout)
        self.tag_head = nn.Linear(hidden_dim, len(vocab.tags))
        self.token_head = nn.Linear(hidden_dim + tag_dim, len(vocab.tokens))
        self.eos_tag, self.pad_tag, self.bos_tag = (vocab.tag_index[EOS], vocab.tag_index[PAD],
                                                    vocab.tag_index[BOS])
        # Masks are derived from the vocabulary, so they are not saved in the state dict.
        self.register_buffer("transition_mask", torch.from_numpy(vocab.tag_transition_mask()),
                             persistent=False)
        self.register_buffer("intent_tag_mask", torch.from_numpy(vocab.intent_tag_mask()),
                             persistent=False)
        # Token masks as additive biases (0 or -inf): one pass over the logits instead of
        # building a boolean mask per row, which matters when thousands of rollouts sample.
        language_allowed = torch.from_numpy(vocab.language_token_mask())
        self.register_buffer("language_token_bias", torch.zeros(language_allowed.shape).masked_fill(
            ~language_allowed, float("-inf")), persistent=False)
        tag_allowed = torch.from_numpy(vocab.tag_token_mask())
        self.register_buffer("tag_token_bias", torch.zeros(tag_allowed.shape).masked_fill(
            ~tag_allowed, float("-inf")), persistent=False)
        # A tag is possible in a language if some word of the language goes with it.
        language_tags = (language_allowed.float() @ tag_allowed.float().T) > 0
        language_tags[:, [self.eos_tag, self.pad_tag]] = True
        self.register_buffer("language_tag_mask", language_tags, persistent=False)
        end_tags = torch.zeros(len(vocab.tags), dtype=torch.bool)
        end_tags[[self.eos_tag, self.pad_tag]] = True
        self.register_buffer("end_tags", end_tags, persistent=False)
        end_token_logits = torch.full((len(vocab.tags), len(vocab.tokens)), float("-inf"))
        end_token_logits[self.eos_tag, EOS_ID] = end_token_logits[self.pad_tag, PAD_ID] = 0.0
        self.register_buffer("end_token_logits", end_token_logits, persistent=False)

    # --- the two heads ---------------------------------------------------------------------
    def _inputs(self, previous_tokens: torch.Tensor, previous_tags: torch.Tensor,
                intents: torch.Tensor, languages: torch.Tensor) -> torch.Tensor:
        """(B, T) previous steps -> (B, T, input size)."""
        condition = torch.cat([self.intent_embedding(intents), self.language_embedding(languages)],
                              dim=-1)
        condition = condition.unsqueeze(1).expand(-1, previous_tokens.size(1), -1)
        return self.dropout(torch.cat([self.token_embedding(previous_tokens),
                                       self.tag_embedding(previous_tags), condition], dim=-1))

    def tag_logits(self, hidden: torch.Tensor, previous_tags: torch.Tensor, intents: torch.Tensor,
                   languages: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """Masked tag logits; ``hidden`` (B, [T,] H), ``previous_tags`` and ``positions``
        (B, [T]), ``intents`` and ``languages`` (B,)."""
        allowed = self.transition_mask[previous_tags]
        condition_allowed = self.intent_tag_mask[intents] & self.language_tag_mask[languages]
        if allowed.dim() == 3:
            condition_allowed = condition_allowed.unsqueeze(1)
        allowed = allowed & condition_allowed
        at_limit = (positions >= self.max_length).unsqueeze(-1)
        allowed = torch.where(at_limit, allowed & self.end_tags, allowed)
        return self.tag_head(hidden).masked_fill(~allowed, float("-inf"))

    def token_logits(self, hidden: torch.Tensor, tags: torch.Tensor,
                     languages: torch.Tensor) -> torch.Tensor:
        """Masked token logits given this step's tag: EOS tag -> EOS, PAD -> PAD, else a word
        of the language seen with the tag."""
        inputs = torch.cat([hidden, self.tag_embedding(tags)], dim=-1)
        first_language = languages.flatten()[0]
        if bool((languages == first_language).all()):  # the usual case: one language, whose
            # mask joins the head's bias (free inside the matrix product)
            logits = nn.functional.linear(
                inputs, self.token_head.weight,
                self.token_head.bias + self.language_token_bias[first_language])
        else:
            bias = self.language_token_bias[languages]
            logits = self.token_head(inputs) + (bias.unsqueeze(1) if tags.dim() == 2 else bias)
        logits = logits + self.tag_token_bias[tags]
        ended = self.end_tags[tags]  # after the EOS tag only the EOS token, after PAD only PAD
        if bool(ended.any()):
            logits[ended] = self.end_token_logits[tags[ended]]
        return logits

    # --- teacher forcing -------------------------------------------------------------------
    def _shifted(self, tokens: torch.Tensor, tags: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Step targets (B, T) -> the inputs that precede them (BOS first)."""
        bos_tokens = torch.full_like(tokens[:, :1], BOS_ID)
        bos_tags = torch.full_like(tags[:, :1], self.bos_tag)
        return (torch.cat([bos_tokens, tokens[:, :-1]], dim=1),
                torch.cat([bos_tags, tags[:, :-1]], dim=1))

    def step_log_probs(self, tokens: torch.Tensor, tags: torch.Tensor, intents: torch.Tensor,
                       languages: torch.Tensor) -> torch.Tensor:
        """``log p(tag_s, token_s | prefix)`` for every step, (B, T); 0 on padding steps."""
        previous_tokens, previous_tags = self._shifted(tokens, tags)
        hidden, _ = self.lstm(self._inputs(previous_tokens, previous_tags, intents, languages))
        hidden = self.dropout(hidden)
        # The heads only at real steps (a padding step's probability is 1 by construction):
        # in a batch of sampled utterances about 40 % of the steps are padding.
        rows, steps = (tags != self.pad_tag).nonzero(as_tuple=True)
        real_hidden, real_tags = hidden[rows, steps], tags[rows, steps]
        tag_log_probs = torch.log_softmax(
            self.tag_logits(real_hidden, previous_tags[rows, steps], intents[rows],
                            languages[rows], steps), dim=-1)
        token_log_probs = torch.log_softmax(
            self.token_logits(real_hidden, real_tags, languages[rows]), dim=-1)
        log_probs = hidden.new_zeros(tokens.shape)
        log_probs[rows, steps] = (
            tag_log_probs.gather(-1, real_tags.unsqueeze(-1)).squeeze(-1)
            + token_log_probs.gather(-1, tokens[rows, steps].unsqueeze(-1)).squeeze(-1))
        return log_probs

    def prefix_states(self, tokens: torch.Tensor, tags: torch.Tensor, intents: torch.Tensor,
                      languages: torch.Tensor, *, fast: bool = False) -> LSTMState:
        """LSTM state after reading the inputs of steps 0..s, for every s: two (B, T, H).

        ``state[:, s]`` with previous step ``(tokens[:, s], tags[:, s])`` is where sampling
        resumes after the prefix of steps 0..s. One pass over time serves every prefix.
        ``fast``: the same states from the sampling tables (no dropout, no gradient), several
        times faster than the module's step-by-step calls.
        """
        previous_tokens, previous_tags = self._shifted(tokens, tags)
        if fast:
            step = self.sampling_tables().lstm_step
            with torch.no_grad():
                return step.states_after_each_step(step.condition_rows(intents, languages),
                                                   previous_tokens, previous_tags)
        return states_after_each_step(
            self.lstm, self._inputs(previous_tokens, previous_tags, intents, languages))

    # --- sampling --------------------------------------------------------------------------
    def sampling_tables(self) -> "SamplingTables":
        """G's weights rearranged for fast sampling, rebuilt only after a weight changed."""
        return self.derived("sampling_tables", lambda: SamplingTables(self))

    def _sampled_tag_logits(self, tables: "SamplingTables", hidden: torch.Tensor,
                            previous_tags: torch.Tensor, intents: torch.Tensor,
                            languages: torch.Tensor, positions: torch.Tensor | None
                            ) -> torch.Tensor:
        """``tag_logits`` for (R, H) hidden states, from the tables; ``positions`` None when
        no row can be at the length limit yet."""
        bias = tables.tag_bias.index_select(0, tables.tag_bias_row(languages, intents,
                                                                  previous_tags))
        logits = torch.addmm(bias, hidden, tables.tag_from_hidden)
        if positions is not None:
            at_limit = positions >= self.max_length
            if bool(at_limit.any()):
                logits[at_limit] += tables.end_only_bias
        return logits

    def _sampled_token_logits(self, tables: "SamplingTables", hidden: torch.Tensor,
                              blocks: torch.Tensor) -> torch.Tensor:
        """``token_logits`` for (P, H) hidden states in the tables' compact columns: row p over
        the words of its (language, tag) ``blocks[p]`` (EOS and PAD tags need no head), the
        rest of its columns impossible. ``blocks`` must be sorted."""
        logits = tables.block_bias.index_select(0, blocks)
        block_ids, counts = torch.unique_consecutive(blocks, return_counts=True)
        start = 0
        for block, count in zip(block_ids.tolist(), counts.tolist()):
            weight = tables.block_weights[block]
            logits[start:start + count, :weight.size(1)].addmm_(hidden[start:start + count],
                                                                weight)
            start += count
        return logits

    @torch.no_grad()
    def continue_sequences(self, state: LSTMState | None, previous_tokens: torch.Tensor,
                           previous_tags: torch.Tensor, positions: torch.Tensor,
                           intents: torch.Tensor, languages: torch.Tensor, steps: int,
                           config: SamplingConfig, *, sources: torch.Tensor | None = None,
                           tables: "SamplingTables | None" = None,
                           uniforms: torch.Tensor | None = None, generator: Random = None
                           ) -> tuple[torch.Tensor, torch.Tensor]:
        """Sample up to ``steps`` more steps per row; returns tokens and tags (R, <=steps).

        Input row i resumes a sequence: LSTM ``state`` (two (1, I, H); None = from the start),
        the previous step ``(previous_tokens, previous_tags)``, ``positions`` (the index of the
        next step: rows may differ, which lets every prefix of a batch be continued at once)
        and its conditions. Output row r continues input row ``sources[r]`` (default r), so
        the N rollouts of a prefix are N rows with one source. ``uniforms`` (R, steps, 2) fix
        the random numbers of the tag and token draws; else ``generator`` (one, or a
        ``RandomStreams`` over the R rows) serves them. Samples come from the policy without
        dropout; ``tables`` (``sampling_tables()``) can be built once for many calls. Ended
        rows are filled with PAD; stops once all have ended.

        Rows with the same history share one LSTM state and one evaluation of each head, and
        only their draws are made per row: the rollouts of a prefix start together, and a
        trained G keeps many of them together for a step or two.
        """
        if sources is None:
            sources = torch.arange(previous_tokens.size(0), device=previous_tokens.device)
        tables = tables or self.sampling_tables()
        tag_count, token_count = self.tag_head.out_features, self.token_head.out_features
        rows = sources.size(0)
        tokens_out = torch.full((rows, steps), PAD_ID, dtype=torch.long, device=sources.device)
        tags_out = torch.full((rows, steps), self.pad_tag, dtype=torch.long,
                              device=sources.device)
        # Only rows still going are computed (an ended row can only continue with PAD), each
        # distinct history once: ``row_group`` maps the active rows to their history.
        active = (~self.end_tags[previous_tags[sources]]).nonzero().squeeze(1)
        inputs, row_group = torch.unique(sources[active], return_inverse=True)
        if state is None:
            hidden, cell = tables.lstm_step.zero_state(inputs.numel())
        else:
            hidden, cell = (part[0].index_select(0, inputs) for part in state)
        previous_tokens, previous_tags, positions, intents, languages = (
            values.index_select(0, inputs)
            for values in (previous_tokens, previous_tags, positions, intents, languages))
        conditions = tables.lstm_step.condition_rows(intents, languages)
        first_limit_step = self.max_length - int(positions.max()) if positions.numel() else 0
        used = 1
        for step in range(steps):
            if active.numel() == 0:
                break
            hidden, cell = tables.lstm_step(conditions, previous_tokens, previous_tags,
                                            (hidden, cell))
            random = generator.subset(active) if isinstance(generator, RandomStreams) else generator
            tag_logits = self._sampled_tag_logits(
                tables, hidden, previous_tags, intents, languages,
                positions if step >= first_limit_step else None)
            tags = pick(tag_logits, config, None if uniforms is None
                        else uniforms[:, step, 0].index_select(0, active), random, rows=row_group)
            tags_out[active, step] = tags
            used = step + 1
            # A row that drew the EOS tag ends here: its token is EOS for sure (no head, no
            # draw). Only an ended row can draw PAD, and ended rows are not active.
            going_on = ~self.end_tags[tags]
            tokens_out[active[~going_on], step] = EOS_ID
            active, row_group, tags = active[going_on], row_group[going_on], tags[going_on]
            if active.numel() == 0:
                break
            # One token distribution per (history, tag) pair; pairs ordered by their
            # (language, tag) block, whose words are the head's columns.
            groups = hidden.size(0)
            row_block = languages.index_select(0, row_group) * tag_count + tags
            pairs, row_pair = torch.unique(row_block * groups + row_group, return_inverse=True)
            pair_group, pair_block = pairs % groups, pairs // groups
            token_logits = self._sampled_token_logits(
                tables, hidden.index_select(0, pair_group), pair_block)
            if isinstance(generator, RandomStreams):
                random = generator.subset(active)
            columns = pick(token_logits, config, None if uniforms is None
                           else uniforms[:, step, 1].index_select(0, active), random, rows=row_pair)
            tokens = tables.block_tokens.view(-1).index_select(
                0, pair_block.index_select(0, row_pair) * tables.token_columns + columns)
            tokens_out[active, step] = tokens
            histories, row_group = torch.unique(row_pair * token_count + tokens,
                                                return_inverse=True)
            pair, previous_tokens = histories // token_count, histories % token_count
            parent = pair_group.index_select(0, pair)
            previous_tags = pair_block.index_select(0, pair) % tag_count
            # index_select: indexing with a tensor (aten::index) is several times slower
            # here, and these gathers run at every step
            hidden, cell, positions, intents, languages, conditions = (
                values.index_select(0, parent)
                for values in (hidden, cell, positions, intents, languages, conditions))
            positions = positions + 1
        return tokens_out[:, :used], tags_out[:, :used]

    def sample(self, intents: torch.Tensor, languages: torch.Tensor, config: SamplingConfig, *,
               tables: "SamplingTables | None" = None,
               generator: Random = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Whole utterances for the given conditions: step tokens and tags (B, T), EOS-ended."""
        # one key per (intent, language): unique(dim=0) on pairs goes row by row (2.7 ms for 464)
        language_count = self.language_embedding.num_embeddings
        conditions, sources = torch.unique(intents * language_count + languages,
                                           return_inverse=True)
        start = torch.zeros(conditions.size(0), dtype=torch.long, device=intents.device)
        return self.continue_sequences(
            None, start + BOS_ID, start + self.bos_tag, start, conditions // language_count,
            conditions % language_count, self.max_length + 1, config, sources=sources,
            tables=tables, generator=generator)


class SamplingTables:
    """G's weights rearranged for sampling without gradients: the LSTM step of
    ``EmbeddingLSTMStep``; the tag head with its masks as additive biases, one row per
    (language, intent, previous tag); the token head cut into one *block* per (language,
    tag): the words of the language seen with the tag are the block's columns, with their
    weight columns (``block_weights``) and a bias row (``block_bias``: the tag embedding's
    part and the head's bias; the columns past the block's words impossible).

    Token distributions are then ``token_columns`` wide, the largest block padded to a
    multiple of ``COLUMN_MULTIPLE``, instead of the whole vocabulary: on 1,000 xSID English
    utterances the vocabulary has 1,450 words, ``O`` 369 and a slot tag 88 on average
    (weighted by use), and the token head's product, softmax and cumulative sum are most of
    sampling's arithmetic. ``block_tokens`` maps a block's column back to its word.
    """

    COLUMN_MULTIPLE = 16

    def __init__(self, generator: Generator):
        self.lstm_step = EmbeddingLSTMStep(generator.lstm, generator.token_embedding,
                                           generator.tag_embedding, generator.intent_embedding,
                                           generator.language_embedding)
        hidden_size = generator.lstm.hidden_size
        self.tag_count = generator.tag_head.out_features
        self.intent_count = generator.intent_tag_mask.size(0)
        with torch.no_grad():
            allowed = (generator.language_tag_mask[:, None, None, :]
                       & generator.intent_tag_mask[None, :, None, :]
                       & generator.transition_mask)  # (language, intent, previous, next)
            self.tag_bias = (torch.zeros(allowed.shape, device=allowed.device).masked_fill(~allowed, float("-inf"))
                             + generator.tag_head.bias).flatten(0, 2)
            self.tag_from_hidden = generator.tag_head.weight.T.contiguous()
            self.end_only_bias = torch.zeros(allowed.size(-1), device=allowed.device).masked_fill(
                ~generator.end_tags, float("-inf"))
            weight = generator.token_head.weight
            from_hidden = weight[:, :hidden_size]
            from_tag = (generator.tag_embedding.weight @ weight[:, hidden_size:].T
                        + generator.token_head.bias)
            words = (generator.language_token_bias.isfinite()[:, None, :]
                     & generator.tag_token_bias.isfinite()[None, :, :])  # (language, tag, word)
            words[:, generator.end_tags] = False  # the EOS and PAD tags need no head
            words = words.flatten(0, 1)
            sizes = words.sum(dim=1)
            self.token_columns = max(1, -(-int(sizes.max()) // self.COLUMN_MULTIPLE)
                                     ) * self.COLUMN_MULTIPLE
            self.block_bias = torch.full((words.size(0), self.token_columns), float("-inf"),
                                         device=words.device)
            self.block_tokens = torch.full((words.size(0), self.token_columns), PAD_ID,
                                           device=words.device)
            # Every (block, word) pair at once, block by block (tables are rebuilt after each
            # G update, so a loop of per-block gathers here cost a step several ms)
            pair_blocks, pair_words = words.nonzero(as_tuple=True)
            starts = sizes.cumsum(0) - sizes
            pair_columns = (torch.arange(pair_words.numel(), device=words.device)
                            - starts[pair_blocks])
            self.block_tokens[pair_blocks, pair_columns] = pair_words
            self.block_bias[pair_blocks, pair_columns] = from_tag[pair_blocks % self.tag_count,
                                                                 pair_words]
            pair_weights = from_hidden.index_select(0, pair_words)  # (pairs, H)
            self.block_weights: dict[int, torch.Tensor] = {
                block: pair_weights[start:start + size].T
                for block, (start, size) in enumerate(zip(starts.tolist(), sizes.tolist()))
                if size}

    def tag_bias_row(self, languages: torch.Tensor, intents: torch.Tensor,
                     previous_tags: torch.Tensor) -> torch.Tensor:
        """The rows of ``tag_bias`` for these conditions and previous tags."""
        return (languages * self.intent_count + intents) * self.tag_count + previous_tags
