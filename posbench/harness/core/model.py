"""posbench's decoder: OLMo-2 and the Llama family (Llama, Mistral, Qwen2) in one readable file.

    Transformer(config, scheme)(input_ids [B, N], position_ids=None, cache=None, attention_mask=None) -> logits

The positional scheme gives each layer a position module (posbench/position_schemes/layers.py) that says what q and
k rotate by: integer positions (rope), nothing (nope), the positions the layer's RePo maps predict (repo), or a kind
of its own; this file never asks which scheme or kind it runs. Every rotation goes through posbench.kernels.rotary
(Triton on GPU, the plain reference elsewhere) with angles in fp32; attention goes through posbench.kernels.attention
(SDPA, backend chosen); the RMSNorms, the residual adds next to them and SwiGLU go through posbench.kernels.fused (one
Triton pass each on GPU, the same eager code elsewhere).

Weights are fused at build time as gpt-fast does: q/k/v (plus the position module's input maps) are one parameter,
gate/up another (FusedLinear), in training and inference alike. Checkpoint names are the Hugging Face ones; the
mapping (each fused part as rows of its parameter) is posbench/harness/core/checkpoint.py's checkpoint_tensors.

Blocks:
  OLMo-2 (post-norm)   h = x + post_attention_layernorm(attn(x));  out = h + post_feedforward_layernorm(mlp(h))
                       q and k are RMS-normalised over the whole projection, before the head split.
  Llama (pre-norm)     h = x + attn(input_layernorm(x));           out = h + mlp(post_attention_layernorm(h))
RePo reads the attention's input: the raw residual stream for OLMo-2, the normed one for Llama-style blocks.

KV cache (gpt-fast style): setup_cache(batch, max_len) preallocates per-layer k/v buffers [B, H_kv, max_len, D]
holding keys AFTER rotation, so a token's learned position is computed once, from its own hidden state, and never
recomputed. Each forward with a cache writes at cache.offset and advances it; every row of the batch shares the
offset, so batches of different lengths are left-padded and described by attention_mask.
"""
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from posbench.kernels.attention import attention, build_mask
from posbench.kernels.fused import add_rms_norm, add_then_rms_norm, rms_norm, swiglu
from posbench.kernels.rotary import apply_qk_norm_rotary, apply_rotary_qk
from posbench.position_schemes import PositionLayer, PositionShape, RotaryConfig, Scheme

# model_type -> the transformers class whose checkpoints we read and write.
ARCHITECTURES = {
    "olmo2": "Olmo2ForCausalLM",
    "llama": "LlamaForCausalLM",
    "mistral": "MistralForCausalLM",
    "qwen2": "Qwen2ForCausalLM",
}


@dataclass
class ModelConfig:
    model_type: str
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    max_position_embeddings: int
    rms_norm_eps: float = 1e-6
    tie_word_embeddings: bool = False
    qkv_bias: bool = False
    o_bias: bool = False
    mlp_bias: bool = False
    rope_theta: float = 10_000.0
    rope_parameters: dict = field(default_factory=lambda: {"rope_type": "default"})  # scaling only, no theta
    partial_rotary_factor: float = 1.0
    hf_config: dict = field(default_factory=dict, repr=False)  # the config.json it came from, kept for saving

    @property
    def post_norm(self) -> bool:
        return self.model_type == "olmo2"

    @classmethod
    def from_hf(cls, hf: dict) -> "ModelConfig":
        """From a config.json dict. Raises ValueError naming the offending key.

        transformers' own config class fills the defaults a config.json may omit and converts legacy keys
        (top-level rope_theta, rope_scaling) to 5.x rope_parameters, so we read what transformers would run.
        """
        model_type = hf.get("model_type")
        if model_type not in ARCHITECTURES:
            raise ValueError(f"model_type {model_type!r} is not supported (supported: {', '.join(ARCHITECTURES)})")
        for key in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads"):
            if not isinstance(hf.get(key), int):
                raise ValueError(f"{key} must be an integer, got {hf.get(key)!r}")
        from transformers import AutoConfig

        try:
            cfg = AutoConfig.for_model(model_type, **{k: v for k, v in hf.items() if k != "model_type"})
        except Exception as err:  # transformers raises ValueError, TypeError or huggingface_hub's strict errors
            raise ValueError(f"not a valid {model_type} config: {err}") from None
        if cfg.hidden_act != "silu":
            raise ValueError(f"hidden_act {cfg.hidden_act!r} is not supported (only silu, i.e. SwiGLU)")
        if getattr(cfg, "sliding_window", None) is not None:
            raise ValueError(f"sliding_window={cfg.sliding_window}: sliding-window attention is not implemented")
        rope = {k: v for k, v in (cfg.rope_parameters or {}).items() if k != "type" and v is not None}
        if any(isinstance(v, dict) for v in rope.values()):
            raise ValueError("rope_parameters nested per layer type are not supported")
        attention_bias = getattr(cfg, "attention_bias", False)
        return cls(
            model_type=model_type,
            vocab_size=cfg.vocab_size,
            hidden_size=cfg.hidden_size,
            intermediate_size=cfg.intermediate_size,
            num_layers=cfg.num_hidden_layers,
            num_heads=cfg.num_attention_heads,
            num_kv_heads=cfg.num_key_value_heads or cfg.num_attention_heads,
            head_dim=getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads,
            max_position_embeddings=cfg.max_position_embeddings,
            rms_norm_eps=cfg.rms_norm_eps,
            tie_word_embeddings=bool(cfg.tie_word_embeddings),
            qkv_bias=model_type == "qwen2" or attention_bias,  # Qwen2 always has q/k/v biases, never an o bias
            o_bias=model_type != "qwen2" and attention_bias,
            mlp_bias=bool(getattr(cfg, "mlp_bias", False)),
            rope_theta=float(rope.pop("rope_theta", 10_000.0)),
            partial_rotary_factor=float(rope.pop("partial_rotary_factor", None) or 1.0),
            rope_parameters=rope,
            hf_config=dict(hf),
        )

    def to_hf(self) -> dict:
        """The config.json keys this config owns (posbench/harness/core/checkpoint.py merges them over hf_config)."""
        out = {
            "model_type": self.model_type,
            "architectures": [ARCHITECTURES[self.model_type]],
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size,
            "num_hidden_layers": self.num_layers,
            "num_attention_heads": self.num_heads,
            "num_key_value_heads": self.num_kv_heads,
            "head_dim": self.head_dim,
            "max_position_embeddings": self.max_position_embeddings,
            "rms_norm_eps": self.rms_norm_eps,
            "tie_word_embeddings": self.tie_word_embeddings,
            "hidden_act": "silu",
            "rope_parameters": {**self.rope_parameters, "rope_theta": self.rope_theta},
        }
        if self.model_type in ("olmo2", "llama"):
            out["attention_bias"] = self.qkv_bias
        if self.model_type == "llama":
            out["mlp_bias"] = self.mlp_bias
        if self.partial_rotary_factor != 1.0:
            out["rope_parameters"]["partial_rotary_factor"] = self.partial_rotary_factor
        return out

    def position_shape(self) -> PositionShape:
        return PositionShape(hidden_size=self.hidden_size, num_heads=self.num_heads, num_kv_heads=self.num_kv_heads,
                             head_dim=self.head_dim)

    def rotary(self) -> RotaryConfig:
        return RotaryConfig(head_dim=self.head_dim, rope_theta=self.rope_theta,
                            max_position_embeddings=self.max_position_embeddings,
                            rope_parameters=dict(self.rope_parameters),
                            partial_rotary_factor=self.partial_rotary_factor)


@dataclass
class KVCache:
    """Per-layer key and value buffers [B, H_kv, max_len, D] (keys after rotation); `offset` positions are filled."""
    k: list
    v: list
    offset: int = 0

    @property
    def max_len(self) -> int:
        return self.k[0].shape[2]

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor):
        """Write this step's k, v [B, H_kv, N, D] at offset; return everything filled so far (offset + N)."""
        end = self.offset + k.shape[2]
        self.k[layer][:, :, self.offset:end] = k
        self.v[layer][:, :, self.offset:end] = v
        return self.k[layer][:, :, :end], self.v[layer][:, :, :end]


@dataclass
class Step:
    """What every layer of one forward shares."""
    position_ids: torch.Tensor       # [B, N] integer positions, used by rope layers
    inv_freq: torch.Tensor | None    # fp32 [R/2]; None when no layer rotates
    attention_scaling: float         # YaRN's mscale on cos and sin, 1.0 otherwise
    mask: torch.Tensor | None        # None: plain causal; else bool [B, 1, N, T], True = may attend (see forward_mask)
    cache: KVCache | None
    frequencies_by_kind: dict | None = None  # {layer kind: (inv_freq, attention_scaling)} for kinds whose
    #                                          frequencies differ from the above (RePo's scaling_target); None: none
    probe: object = None             # analysis hook (posbench/harness/analysis): sees and may replace each layer's
    #                                  positions, sees its rotated q and k; None in every normal forward


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float, cast_before_weight: bool):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps
        # Llama casts the normalised value back to the input dtype before the weight; OLMo-2 after. Same in fp32,
        # but following each one keeps bf16 runs bit-close to transformers.
        self.cast_before_weight = cast_before_weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return rms_norm(x, self.weight, self.eps, self.cast_before_weight)

    def add_to(self, residual: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """residual + self(x): a post-norm residual add, one pass on GPU."""
        return add_rms_norm(residual, x, self.weight, self.eps, self.cast_before_weight)

    def add_then_norm(self, residual: torch.Tensor, x: torch.Tensor):
        """(h, self(h)) with h = residual + x: a pre-norm residual add and the norm after it, one pass on GPU."""
        return add_then_rms_norm(residual, x, self.weight, self.eps, self.cast_before_weight)


class FusedLinear(nn.Module):
    """Several linear maps of the same input stored as ONE weight, rows in `parts` order (gpt-fast's wqkv): one
    matrix product runs nearer the card's peak than several narrow ones, and there is no second copy of the weights.
    The checkpoint keeps the maps apart (q_proj, k_proj, ...): posbench/harness/core/checkpoint.py loads and saves
    each as its rows (views() below).

    parts: {name: out_features}. biased: how many leading parts have a bias (q/k/v may; RePo's maps never do); the
    bias rows of the others are zero and not parameters."""

    def __init__(self, in_features: int, parts: dict, biased: int = 0):
        super().__init__()
        self.parts = dict(parts)
        widths = list(self.parts.values())
        self.weight = nn.Parameter(torch.empty(sum(widths), in_features))
        self.bias = nn.Parameter(torch.empty(sum(widths[:biased]))) if biased else None
        self.biased = biased
        # nn.Linear's default init, so a model built in place works before any load
        nn.init.kaiming_uniform_(self.weight, a=5 ** 0.5)
        if self.bias is not None:
            nn.init.uniform_(self.bias, -in_features ** -0.5, in_features ** -0.5)

    def forward(self, x: torch.Tensor) -> tuple:
        bias = self.bias
        if bias is not None and bias.shape[0] < self.weight.shape[0]:
            bias = torch.cat([bias, bias.new_zeros(self.weight.shape[0] - bias.shape[0])])
        return F.linear(x, self.weight, bias).split(list(self.parts.values()), -1)

    def rows(self, name: str) -> slice:
        """The rows of part `name` in the weight (and in its gradient)."""
        names = list(self.parts)
        start = sum(self.parts[n] for n in names[:names.index(name)])
        return slice(start, start + self.parts[name])

    def views(self) -> dict:
        """{"NAME.weight" | "NAME.bias": the rows of that part (views: writing into one loads it)}."""
        out = {}
        for i, name in enumerate(self.parts):
            out[f"{name}.weight"] = self.weight[self.rows(name)]
            if i < self.biased:
                out[f"{name}.bias"] = self.bias[self.rows(name)]
        return out


class Attention(nn.Module):
    def __init__(self, config: ModelConfig, position: PositionLayer):
        super().__init__()
        d, hd = config.hidden_size, config.head_dim
        self.num_heads, self.num_kv_heads, self.head_dim = config.num_heads, config.num_kv_heads, hd
        # q, k, v and the position layer's maps of the same input in one product (checkpoint: q_proj, k_proj, ...)
        parts = {"q_proj": config.num_heads * hd, "k_proj": config.num_kv_heads * hd,
                 "v_proj": config.num_kv_heads * hd}
        self.qkv_proj = FusedLinear(d, parts | position.input_maps, biased=3 if config.qkv_bias else 0)
        self.o_proj = nn.Linear(config.num_heads * hd, d, bias=config.o_bias)
        if config.post_norm:
            self.q_norm = RMSNorm(config.num_heads * hd, config.rms_norm_eps, cast_before_weight=False)
            self.k_norm = RMSNorm(config.num_kv_heads * hd, config.rms_norm_eps, cast_before_weight=False)
        else:
            self.q_norm = self.k_norm = None
        self.position = position
        self.reset_position_parameters()

    def position_maps(self) -> dict:
        """{name: weight rows} of the position layer's input maps inside qkv_proj."""
        views = self.qkv_proj.views()
        return {name: views[f"{name}.weight"] for name in self.position.input_maps}

    def reset_position_parameters(self):
        self.position.reset_parameters(self.position_maps())

    def forward(self, x: torch.Tensor, step: Step, layer: int):
        """x [B, N, d] -> (output [B, N, d], positions this layer rotated by: [B, N] int, [B, N, P] fp32 or None)."""
        B, N, _ = x.shape
        q, k, v, *maps = self.qkv_proj(x)
        positions = self.position.positions(maps, step.position_ids)
        if step.probe is not None:
            positions = step.probe.positions(layer, self.position.kind, positions, step)
        inv_freq, scaling = step.inv_freq, step.attention_scaling
        if step.frequencies_by_kind and self.position.kind in step.frequencies_by_kind:
            inv_freq, scaling = step.frequencies_by_kind[self.position.kind]
        if self.q_norm is not None:  # OLMo-2: RMSNorm over the whole projection, then rotation, in one pass on GPU
            q, k = apply_qk_norm_rotary(q, k, self.q_norm.weight, self.k_norm.weight, self.q_norm.eps, positions,
                                        inv_freq, scaling, self.num_heads, self.num_kv_heads)
        else:
            q, k = apply_rotary_qk(q.view(B, N, self.num_heads, self.head_dim),
                                   k.view(B, N, self.num_kv_heads, self.head_dim),
                                   positions, inv_freq, scaling)
        v = v.view(B, N, self.num_kv_heads, self.head_dim)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        if step.cache is not None:
            k, v = step.cache.update(layer, k, v)
        if step.probe is not None:
            step.probe.attention(layer, q, k)
        # step.mask already holds causality; without one, causal attention (decode: the whole cache) is exact.
        out = attention(q, k, v, causal=step.mask is None, mask=step.mask)
        out = out.transpose(1, 2).reshape(B, N, self.num_heads * self.head_dim)
        return self.o_proj(out), positions


class MLP(nn.Module):
    """SwiGLU: down(silu(gate(x)) * up(x)), gate and up as one product (checkpoint: gate_proj, up_proj)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        d, f, bias = config.hidden_size, config.intermediate_size, config.mlp_bias
        self.gate_up_proj = FusedLinear(d, {"gate_proj": f, "up_proj": f}, biased=2 if bias else 0)
        self.down_proj = nn.Linear(f, d, bias=bias)

    def forward(self, x):
        return self.down_proj(swiglu(*self.gate_up_proj(x)))  # silu(gate) * up, one pass on GPU


class Block(nn.Module):
    def __init__(self, config: ModelConfig, position: PositionLayer):
        super().__init__()
        self.post_norm = config.post_norm
        self.self_attn = Attention(config, position)
        self.mlp = MLP(config)
        d, eps, llama = config.hidden_size, config.rms_norm_eps, not config.post_norm
        # The names are transformers' (so weights load by name); "post_attention_layernorm" means different things.
        if self.post_norm:
            self.post_attention_layernorm = RMSNorm(d, eps, cast_before_weight=False)
            self.post_feedforward_layernorm = RMSNorm(d, eps, cast_before_weight=False)
        else:
            self.input_layernorm = RMSNorm(d, eps, cast_before_weight=llama)
            self.post_attention_layernorm = RMSNorm(d, eps, cast_before_weight=llama)

    def forward(self, x: torch.Tensor, step: Step, layer: int):
        if self.post_norm:
            a, positions = self.self_attn(x, step, layer)
            h = self.post_attention_layernorm.add_to(x, a)                       # x + norm(a)
            return self.post_feedforward_layernorm.add_to(h, self.mlp(h)), positions  # h + norm(mlp(h))
        a, positions = self.self_attn(self.input_layernorm(x), step, layer)
        h, normed = self.post_attention_layernorm.add_then_norm(x, a)            # h = x + a, normed = norm(h)
        return h + self.mlp(normed), positions


def forward_mask(attention_mask: torch.Tensor | None, batch: int, offset: int, n: int, device):
    """The attention mask every layer of one forward shares, built once: None when causal attention over the keys
    is exact (no padding, and a fresh prefill or a single new token), else bool [B, 1, N, offset + N]."""
    if attention_mask is None and (offset == 0 or n == 1):
        return None
    return build_mask(batch, n, offset + n, causal=True, mask=attention_mask, device=device)


class Transformer(nn.Module):
    def __init__(self, config: ModelConfig, scheme: Scheme):
        super().__init__()
        self.config, self.scheme = config, scheme
        self.rotary = config.rotary()
        positions = scheme.position_layers(config.position_shape(), config.num_layers)
        self.layer_kinds = [p.kind for p in positions]
        self.rotates = any(p.rotates for p in positions)
        self.rotating_kinds = sorted({p.kind for p in positions if p.rotates})
        self.rope_parameters = scheme.rope_parameters(self.rotary)  # validates the scheme against the config now
        self.length_dependent = scheme.length_dependent(self.rotary)
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(Block(config, position) for position in positions)
        self.norm = RMSNorm(config.hidden_size, config.rms_norm_eps, cast_before_weight=not config.post_norm)
        self.lm_head = None if config.tie_word_embeddings else nn.Linear(config.hidden_size, config.vocab_size,
                                                                         bias=False)
        # Frequencies are fp32 and not a buffer, so model.to(torch.bfloat16) cannot round them; memoised per device.
        self._frequencies = {}

    def set_scheme(self, scheme: Scheme):
        """Switch to another scheme with the same layer kinds (e.g. another YaRN factor for another length) without
        reloading weights: only the frequencies change."""
        kinds = scheme.layer_kinds(self.config.num_layers)
        if kinds != self.layer_kinds:
            raise ValueError(f"scheme {scheme.spec()} changes the layer kinds; load the checkpoint again instead")
        self.rope_parameters = scheme.rope_parameters(self.rotary)
        self.scheme, self.length_dependent = scheme, scheme.length_dependent(self.rotary)
        self._frequencies = {}

    def setup_cache(self, batch_size: int, max_len: int) -> KVCache:
        """Empty k/v buffers for batch_size rows of up to max_len positions, in the model's dtype and device."""
        like = self.embed_tokens.weight
        shape = (batch_size, self.config.num_kv_heads, max_len, self.config.head_dim)
        return KVCache(k=[torch.zeros(shape, dtype=like.dtype, device=like.device) for _ in self.layers],
                       v=[torch.zeros(shape, dtype=like.dtype, device=like.device) for _ in self.layers])

    def frequencies(self, position_ids: torch.Tensor, layer_kind: str = "rope"):
        """(inv_freq fp32 [R/2], attention_scaling) of `layer_kind`'s layers for this forward. Dynamic NTK and
        LongRoPE depend on the current length, taken as max position + 1 over the batch like transformers'
        dynamic_rope_update."""
        device = position_ids.device
        if self.length_dependent:
            inv_freq, scaling = self.scheme.frequencies(self.rotary, int(position_ids.max()) + 1, layer_kind)
            return inv_freq.to(device), scaling
        if (device, layer_kind) not in self._frequencies:
            inv_freq, scaling = self.scheme.frequencies(self.rotary, layer_kind=layer_kind)
            self._frequencies[device, layer_kind] = (inv_freq.to(device), scaling)
        return self._frequencies[device, layer_kind]

    def forward(self, input_ids: torch.Tensor, position_ids: torch.Tensor | None = None, cache: KVCache | None = None,
                attention_mask: torch.Tensor | None = None, return_positions: bool = False, last_only: bool = False,
                probe=None):
        """input_ids [B, N] -> logits [B, N, vocab] (model dtype).

        position_ids [B, N]: integer positions of these tokens. None: counted from the first real token of each row
        (attention_mask) or from the cache offset.
        cache: from setup_cache; this forward's keys and values are written at cache.offset, which then advances.
        attention_mask: bool [B, offset + N], True = real token, for left padding; covers the cached tokens too.
        return_positions: also return, per layer, what it rotated by ([B, N] int for rope, [B, N, H_kv] fp32 for
        repo, None for nope).
        last_only: logits for the last position only ([B, 1, vocab]): generation needs no more, and a 16K-token
        prompt's full logits over a 100K vocabulary would take gigabytes.
        probe: an analysis hook (see Step.probe); None for every normal forward.
        """
        B, N = input_ids.shape
        offset = cache.offset if cache is not None else 0
        if cache is not None and offset + N > cache.max_len:
            raise ValueError(f"KV cache holds {cache.max_len} positions; {offset} filled + {N} new do not fit")
        if attention_mask is not None and tuple(attention_mask.shape) != (B, offset + N):
            raise ValueError(f"attention_mask must be [batch, cached + new] = [{B}, {offset + N}], "
                             f"got {list(attention_mask.shape)}")
        device = input_ids.device
        if position_ids is None:
            if attention_mask is not None:
                position_ids = (attention_mask.to(device).long().cumsum(-1) - 1).clamp(min=0)[:, offset:]
            else:
                position_ids = torch.arange(offset, offset + N, device=device).expand(B, N)
        inv_freq, scaling = self.frequencies(position_ids) if self.rotates else (None, 1.0)
        by_kind = None   # kinds whose frequencies differ from the rope layers' (RePo's scaling_target)
        if self.rotates and not self.scheme.same_frequencies():
            by_kind = {kind: self.frequencies(position_ids, kind) for kind in self.rotating_kinds if kind != "rope"}
        step = Step(position_ids, inv_freq, scaling, forward_mask(attention_mask, B, offset, N, device), cache,
                    by_kind, probe)

        x = self.embed_tokens(input_ids)
        positions = []
        for i, layer in enumerate(self.layers):
            x, layer_positions = layer(x, step, i)
            positions.append(layer_positions)
        if cache is not None:
            cache.offset += N
        x = self.norm(x[:, -1:] if last_only else x)
        logits = self.lm_head(x) if self.lm_head is not None else F.linear(x, self.embed_tokens.weight)
        return (logits, positions) if return_positions else logits

    def parameter_counts(self) -> dict:
        """{"total": all parameters (tied embeddings once), "position": those of the position layers (RePo's maps,
        a learned kind's own weights), input-map rows of the fused q/k/v weight included}."""
        position = sum(layer.self_attn.position.num_parameters() for layer in self.layers)
        return {"total": sum(p.numel() for p in self.parameters()), "position": position}
