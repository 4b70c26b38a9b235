"""Prefix caching over Qwen 3.5's hybrid attention: a prompt resumes from the last one's state."""

from __future__ import annotations

from typing import Any

# Linear-attention states kept at this many message ends of the last prompt (the newest ones):
# the prompt usually changes a few messages back (the oldest screenshot turning into a
# placeholder, three steps = six messages back), never further than the text window's chunk.
PREFIX_SNAPSHOTS = 16


class PrefixCache:
    """The model's state over the last prompt, kept so the next prompt prefills only what is new.

    Qwen 3.5 is hybrid. Its full-attention layers keep keys and values per token: those can be
    cut back to any length. Its Gated DeltaNet layers keep one recurrent state and a short conv
    window for the whole sequence so far: those cannot be cut back, so a copy is taken at every
    message end (`<|im_end|>`) while prefilling, and a later prompt resumes from the latest
    copy that lies inside its byte-identical prefix. Positions (M-RoPE with images) are computed
    over the whole prompt, so the resumed tokens get exactly the positions a full prefill gives.
    """

    def __init__(self, max_snapshots: int = PREFIX_SNAPSHOTS) -> None:
        self.max_snapshots = max_snapshots
        self.ids: Any = None  # 1-D token ids the kept state covers (up to its last message end)
        self.kv: list[tuple[Any, Any] | None] = []  # full-attention keys/values over self.ids
        self.snapshots: dict[int, list[Any]] = {}  # message end -> linear-attention states

    def clear(self) -> None:
        """Forget everything (another model, or a failed generation)."""
        self.ids, self.kv, self.snapshots = None, [], {}

    def reusable(self, ids: Any, limit: int) -> int:
        """How many leading tokens of ids the kept state covers (a message end, <= limit)."""
        if self.ids is None or not self.snapshots:
            return 0
        n = min(int(self.ids.shape[0]), int(ids.shape[0]))
        same = (self.ids[:n] == ids[:n]).int()
        common = n if bool(same.all()) else int(same.argmin())
        return max((b for b in self.snapshots if b <= min(common, limit)), default=0)

    def restore(self, model: Any, length: int) -> Any:
        """A fresh cache holding the state after the first `length` tokens of self.ids."""
        from transformers import DynamicCache
        from transformers.cache_utils import DynamicLayer, LinearAttentionCacheLayerMixin

        cache = DynamicCache(config=model.config)
        if length == 0:
            return cache
        states = self.snapshots[length]
        for i, layer in enumerate(cache.layers):
            cell: Any = layer  # transformers' own annotations are narrower than its code
            if isinstance(layer, LinearAttentionCacheLayerMixin) and states[i] is not None:
                conv, recurrent, kernel = states[i]
                cell.lazy_initialization(conv, recurrent, conv_kernel_size=kernel)
                cell.conv_states[0].copy_(conv)
                cell.recurrent_states[0].copy_(recurrent)
                cell.has_previous_state[0] = True
            kept = self.kv[i]
            if isinstance(layer, DynamicLayer) and kept is not None:
                keys, values = kept
                cell.lazy_initialization(keys, values)
                # Slices of the kept tensors: update() concatenates into new ones, never in place.
                cell.keys, cell.values = keys[..., :length, :], values[..., :length, :]
        return cache

    def snapshot(self, cache: Any, at: int) -> None:
        """Copy the linear-attention states after `at` tokens (a message end)."""
        from transformers.cache_utils import LinearAttentionCacheLayerMixin

        states: list[Any] = []
        layer: Any
        for layer in cache.layers:
            linear = isinstance(layer, LinearAttentionCacheLayerMixin)
            if linear and layer.conv_states[0] is not None:
                states.append(
                    (
                        layer.conv_states[0].clone(),
                        layer.recurrent_states[0].clone(),
                        layer.conv_kernel_size[0],
                    )
                )
            else:
                states.append(None)
        self.snapshots[at] = states
        for old in sorted(self.snapshots)[: -self.max_snapshots]:
            del self.snapshots[old]

    def keep(self, cache: Any, ids: Any, length: int) -> None:
        """Keep the keys/values over ids[:length] (the snapshots were taken while prefilling)."""
        from transformers.cache_utils import DynamicLayer

        self.ids = ids[:length].clone()
        # References, not copies: generate() grows keys/values by concatenation into new tensors.
        layers: list[Any] = list(cache.layers)
        self.kv = [
            (layer.keys, layer.values)
            if isinstance(layer, DynamicLayer) and layer.is_initialized
            else None
            for layer in layers
        ]

    def prefill(self, model: Any, inputs: Any, im_end_id: int) -> tuple[Any, int]:
        """Prefill the prompt up to its last message end, resuming from the kept state.

        Returns the cache to hand to generate() (which then prefills only the generation
        prompt) and how many tokens were reused. Sets the model's rope deltas so generate()
        continues with the right M-RoPE positions.
        """
        import torch

        ids = inputs["input_ids"]
        row = ids[0]
        length = int(row.shape[0])
        ends = [int(p) + 1 for p in (row == im_end_id).nonzero().flatten().tolist()]
        last = max((b for b in ends if b < length), default=0)
        reused = self.reusable(row, last)
        # Copies past the reused part describe another prompt's tokens: drop them.
        self.snapshots = {b: s for b, s in self.snapshots.items() if b <= reused}
        cache = self.restore(model, reused)
        core = model.model
        grid = inputs.get("image_grid_thw")
        types = inputs.get("mm_token_type_ids")
        mask = inputs.get("attention_mask")
        if grid is not None and types is not None:
            vision, deltas = core.get_rope_index(
                ids, mm_token_type_ids=types, image_grid_thw=grid, attention_mask=mask
            )
        else:
            vision = torch.arange(length, device=ids.device).view(1, 1, -1).expand(3, 1, -1)
            deltas = torch.zeros((1, 1), dtype=torch.long, device=ids.device)
        text = torch.arange(length, device=ids.device).view(1, 1, -1)
        positions = torch.cat([text, vision.to(text.dtype)], dim=0)  # text, t, h, w
        core.rope_deltas = deltas
        if last > reused:
            embeds = self._embed(model, inputs, reused, last)
            start = reused
            for end in [b for b in ends if reused < b <= last]:
                model.model.language_model(
                    inputs_embeds=embeds[:, start - reused : end - reused],
                    position_ids=positions[:, :, start:end],
                    cache=cache,
                    use_cache=True,
                )
                self.snapshot(cache, end)
                start = end
        self.keep(cache, row, last)
        return cache, reused

    def _embed(self, model: Any, inputs: Any, start: int, end: int) -> Any:
        """Input embeddings of tokens [start, end), with the features of the images among them."""
        import torch

        ids = inputs["input_ids"]
        core = model.model
        embeds = core.get_input_embeddings()(ids[:, start:end])
        grid = inputs.get("image_grid_thw")
        pixels = inputs.get("pixel_values")
        if grid is None or pixels is None:
            return embeds
        image_id = model.config.image_token_id
        is_image = ids[0] == image_id
        # Each image is one run of image tokens; merge**2 patches make one token.
        merge = model.config.vision_config.spatial_merge_size
        tokens = (grid.prod(dim=-1) // (merge * merge)).tolist()
        patches = grid.prod(dim=-1).tolist()
        starts = (is_image & ~torch.cat([is_image.new_zeros(1), is_image[:-1]])).nonzero()
        wanted: list[int] = []
        for n, first in enumerate(starts.flatten().tolist()):
            if start <= first < end:
                if first + tokens[n] > end:
                    raise ValueError("an image straddles a message end")
                wanted.append(n)
        if not wanted:
            return embeds
        offsets = [0]
        for p in patches:
            offsets.append(offsets[-1] + int(p))
        chunks = [pixels[offsets[n] : offsets[n + 1]] for n in wanted]
        features = core.get_image_features(
            torch.cat(chunks), grid[wanted], return_dict=True
        ).pooler_output
        image_embeds = torch.cat(list(features), dim=0).to(embeds.device, embeds.dtype)
        where = (ids[:, start:end] == image_id).unsqueeze(-1).expand_as(embeds)
        return embeds.masked_scatter(where, image_embeds)
