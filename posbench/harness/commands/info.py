"""`eval.py info MODEL_DIR`: what a checkpoint is and which scheme each layer runs, without loading tensor data."""


def register(sub):
    p = sub.add_parser("info", help="describe a checkpoint: architecture, size, scheme per layer",
                       description="Describe a local checkpoint folder (config.json + *.safetensors): architecture, "
                       "parameter count and the position layers' share, dtype, max positions and the per-layer "
                       "scheme map. Reads only headers, so it is instant even for large models.")
    p.add_argument("model", metavar="MODEL_DIR", help="checkpoint folder")
    p.add_argument("--scheme", metavar="SPEC", help="force a scheme instead of detecting it, e.g. nope, "
                   "hybrid,pattern=RRRN, rope,scaling=yarn,factor=4, repo,start_layer=5 (see `list schemes`)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.set_defaults(func=run)


def run(args):
    import json

    from posbench.harness.core.checkpoint import inspect_model
    from posbench.position_schemes import format_layer_ids, format_layer_kinds

    info = inspect_model(args.model, scheme=args.scheme)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    total, position = info["num_parameters"], info["position_parameters"]
    size = f"{total:,}" + (f" (position layers add {position:,} = {100 * position / total:.2f}%)" if position else "")
    rope = info["rope_parameters"]
    scaling = {k: v for k, v in rope.items() if k not in ("rope_type", "rope_theta", "partial_rotary_factor")}
    rope_text = f"theta {rope['rope_theta']:g}, {rope['rope_type']}" + (f" {scaling}" if scaling else "")
    detected = info["detected_scheme"]
    rows = [
        ("checkpoint", info["path"]),
        ("architecture", f"{info['architecture']} ({info['hf_class']}): {info['num_layers']} layers, hidden "
                         f"{info['hidden_size']}, heads {info['num_heads']}/{info['num_kv_heads']} (q/kv), "
                         f"head_dim {info['head_dim']}, vocab {info['vocab_size']}"),
        ("parameters", size),
        ("dtype", f"{info['stored_dtype']} (stored)"),
        ("max positions", f"{info['max_position_embeddings']} (RoPE {rope_text})"),
        ("scheme", info["scheme_spec"] + (" (detected)" if detected else " (forced)")),
        ("per layer", format_layer_kinds(info["layer_schemes"])),
    ]
    if info["fresh_position_layers"]:
        rows.append(("fresh weights", f"position weights of layers {format_layer_ids(info['fresh_position_layers'])} "
                                      "would be initialised"))
    if info["unused_weights"]:
        rows.append(("unused", f"{len(info['unused_weights'])} position weights the scheme ignores"))
    for key, value in rows:
        print(f"{key:14s} {value}")
    return 0
