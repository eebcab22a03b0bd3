#!/usr/bin/env python3
"""Hugging Face transformers' side of `gemma3 dump`: the same .npy files, from the reference model.

    scripts/hf_dump.py --model DIR --ids 2,818,5279 --out hf/ [--image a.png ...] [--all] [--dtype f32|f64-mixed]
    gemma3 dump        --model DIR --ids 2,818,5279 --out ours/ [--image a.png ...] [--all]
    scripts/compare_npy.py ours/ hf/ --atol 1e-4

Run it where transformers, torch, numpy (and Pillow for images) are installed; it needs nothing from
this repository. It loads DIR with Gemma3ForCausalLM (model_type gemma3_text) or
Gemma3ForConditionalGeneration (gemma3), eager attention, float32, and writes

  input_ids.npy   int32 [T]
  embed.npy       [T, hidden]          hidden_states[0]: the decoder input (images merged, unscaled)
  layers.npy      [layers, T, hidden]  residual stream after each decoder layer: hidden_states[1..L-1]
                                       and, for the LAST layer, a forward hook on it (see below)
  final_norm.npy  [T, hidden]          hidden_states[L]: the last layer's output AFTER model.norm
  logits.npy      [T, vocab]
  pixel_values.npy, vision_last_hidden_state.npy, image_soft_tokens.npy   with --image
  <module path>.npy with --all: every decoder module output under our observer names
                    (model.layers.N.self_attn.q_proj, ..., .attn_weights [heads, T, T], ...)

Why the hook: transformers' Gemma3TextModel.forward appends the input of every decoder layer to
`all_hidden_states` and then, after the loop, `self.norm(hidden_states)`, so output_hidden_states has
L + 1 entries and its last one is already normalised: hidden_states[L] == final_norm, and the raw
output of the last layer appears nowhere in it (modeling_gemma3.py, v4.50 to v4.57 alike).

Precision: float32 is the reference the fixtures use. `--dtype f64-mixed` loads the weights and
runs the matrix products in float64, but it is NOT a float64 reference: transformers' Gemma 3 casts
to float32 for RMSNorm (Gemma3RMSNorm.forward: `self._norm(x.float())`), computes the RoPE angles
in float32 (Gemma3RotaryEmbedding.forward) and the eager softmax in float32
(eager_attention_forward: `softmax(..., dtype=torch.float32)`), whatever the model's dtype. For a
float64 computation end to end, use `gemma3 dump --dtype f64`.

Image placeholders: the ids carry image_token_index (262144) for each soft token, as `gemma3 dump`'s
do; token_type_ids = (ids == image_token_index) is passed so that transformers builds the per-image
bidirectional mask (without it, v4.51's Gemma3ForConditionalGeneration attends causally inside images).
"""
import argparse
import json
import os
import shutil
import sys
import tempfile

import numpy as np

STAMP = "gemma3-complete.json"  # the completion stamp gemma3 dump writes too


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="checkpoint directory (config.json, safetensors)")
    ids = ap.add_mutually_exclusive_group(required=True)
    ids.add_argument("--ids", help="comma-separated token ids, e.g. 2,818,5279")
    ids.add_argument("--ids-npy", help="token ids from an int .npy file")
    ap.add_argument("--image", action="append", default=[], help="an image per run of placeholders, in order")
    ap.add_argument("--out", required=True, help="output directory")
    ap.add_argument("--all", action="store_true", help="also every decoder module output, by our names")
    ap.add_argument("--dtype", choices=["f32", "f64-mixed"], default="f32",
                    help="f32 (the reference), or f64-mixed: f64 weights and products, but RMSNorm, RoPE "
                         "and softmax stay f32 inside transformers, so not an f64 reference (files are f32)")
    return ap.parse_args()


def find(model, class_name):
    """(qualified name, module) of the first submodule of that class: module paths differ between
    transformers versions (language_model.model.* up to 4.51, model.language_model.* from 4.52)."""
    for name, module in model.named_modules():
        if type(module).__name__ == class_name:
            return name, module
    return None, None


def first(output):
    """Decoder layers and attention modules return tuples in older versions, tensors in newer ones."""
    return output[0] if isinstance(output, (tuple, list)) else output


def main():
    args = parse_args()
    # (imported after the arguments are parsed: --help works without them installed)
    global torch, transformers
    import torch
    import transformers

    ids = [int(v) for v in args.ids.split(",")] if args.ids else np.load(args.ids_npy).astype(np.int64).tolist()
    # All files or none, as `gemma3 dump` writes them: into a temporary sibling directory that
    # replaces --out, with a completion stamp, only when every file is complete.
    out = os.path.abspath(args.out)
    if os.path.isdir(out) and os.listdir(out) and not os.path.exists(os.path.join(out, STAMP)):
        sys.exit(f"hf_dump: {out} holds files that no dump wrote (no {STAMP}); choose a new directory")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    work = tempfile.mkdtemp(prefix="." + os.path.basename(out) + ".tmp-", dir=os.path.dirname(out))
    try:
        status = dump(args, ids, work)
        commit_directory(work, out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return status


def commit_directory(work, out):
    """Stamps `work` (each file and its size) and puts it in place of `out`."""
    files = {f: os.path.getsize(os.path.join(work, f)) for f in sorted(os.listdir(work))}
    with open(os.path.join(work, STAMP), "w") as f:
        json.dump({"files": files}, f, indent=2)
        f.flush()
        os.fsync(f.fileno())
    old = None
    if os.path.exists(out):
        old = tempfile.mkdtemp(prefix="." + os.path.basename(out) + ".old-", dir=os.path.dirname(out))
        os.rename(out, os.path.join(old, "dump"))
    os.rename(work, out)
    if old:
        shutil.rmtree(old, ignore_errors=True)


def dump(args, ids, out_dir):
    dtype = torch.float64 if args.dtype == "f64-mixed" else torch.float32

    config = transformers.AutoConfig.from_pretrained(args.model)
    multimodal = config.model_type == "gemma3"
    cls = transformers.Gemma3ForConditionalGeneration if multimodal else transformers.Gemma3ForCausalLM
    dtype_kw = "dtype" if tuple(int(x) for x in transformers.__version__.split(".")[:2]) >= (4, 56) else "torch_dtype"
    model = cls.from_pretrained(args.model, attn_implementation="eager", **{dtype_kw: dtype}).eval()

    _, text = find(model, "Gemma3TextModel")
    layers = text.layers
    L = len(layers)
    seen = {}  # our name -> tensor [T, ...] (batch dimension dropped)

    def save(name, tensor):
        np.save(os.path.join(out_dir, name + ".npy"), tensor.detach().to(torch.float32).cpu().numpy())

    # The last layer's raw output: not in hidden_states (see the docstring).
    last = {}
    layers[L - 1].register_forward_hook(lambda m, i, o: last.__setitem__("x", first(o)[0]))

    if args.all:
        layer_in = {}
        for rel, module in text.named_modules():
            if not rel or "rotary" in rel:  # the RoPE tables are not activations
                continue
            ours = "model." + rel  # the text model's modules under the names our observers use
            parts = rel.split(".")
            if len(parts) == 2 and parts[0] == "layers":  # a decoder layer: remember its input
                module.register_forward_pre_hook(
                    lambda m, a, k=int(parts[1]): layer_in.__setitem__(k, a[0][0]) if a else None)

            def hook(m, inputs, output, ours=ours, parts=parts):
                out = first(output)
                if not torch.is_tensor(out):
                    return
                out = out[0]
                if parts[-1] in ("q_norm", "k_norm"):  # applied to [heads, T, D]: back to [T, heads*D]
                    out = out.transpose(0, 1).reshape(out.shape[1], -1)
                seen[ours] = out
                if parts[-1] == "post_attention_layernorm":  # x + attention branch, before the MLP
                    k = int(parts[1])
                    if k in layer_in:
                        seen["model.layers.%d.attn_residual" % k] = layer_in[k] + out
                if parts[-1] == "o_proj":  # its input is the attention output before o_proj
                    seen[ours.replace("o_proj", "attn_output")] = inputs[0][0]

            module.register_forward_hook(hook)

    # Vision: SigLIP's last_hidden_state and the projector's soft tokens, one row block per image.
    vision = {}
    if multimodal:
        _, tower = find(model, "SiglipVisionModel")
        _, projector = find(model, "Gemma3MultiModalProjector")
        tower.register_forward_hook(lambda m, i, o: vision.__setitem__("hidden", o.last_hidden_state))
        projector.register_forward_hook(lambda m, i, o: vision.__setitem__("soft", o))

    input_ids = torch.tensor([ids], dtype=torch.long)
    kwargs = dict(input_ids=input_ids, output_hidden_states=True, output_attentions=args.all, use_cache=False)
    if args.image:
        from PIL import Image
        from transformers import Gemma3ImageProcessor

        if os.path.exists(os.path.join(args.model, "preprocessor_config.json")):
            processor = Gemma3ImageProcessor.from_pretrained(args.model)
        else:  # the published settings at the tower's input size, as gemma3's ImageProcessorConfig
            side = config.vision_config.image_size
            processor = Gemma3ImageProcessor(size={"height": side, "width": side})
        images = [Image.open(p).convert("RGB") for p in args.image]
        pixels = processor(images=images, do_pan_and_scan=False, return_tensors="pt")["pixel_values"].to(dtype)
        kwargs["pixel_values"] = pixels
        save("pixel_values", pixels)
    if multimodal:
        kwargs["token_type_ids"] = (input_ids == config.image_token_index).long()

    with torch.no_grad():
        out = model(**kwargs)

    hs = out.hidden_states  # L + 1 tensors [1, T, hidden]
    assert len(hs) == L + 1, "expected %d hidden states, got %d" % (L + 1, len(hs))
    np.save(os.path.join(out_dir, "input_ids.npy"), np.asarray(ids, dtype=np.int32))
    save("embed", hs[0][0])
    save("layers", torch.stack([h[0] for h in hs[1:L]] + [last["x"]]))
    save("final_norm", hs[L][0])
    save("logits", out.logits[0])
    if args.image:
        save("vision_last_hidden_state", vision["hidden"])
        save("image_soft_tokens", vision["soft"])
    if args.all:
        seen["model.inputs_embeds"] = hs[0][0]
        for k, attn in enumerate(out.attentions or ()):  # [1, heads, T, T] eager softmax probabilities
            seen["model.layers.%d.self_attn.attn_weights" % k] = attn[0]
        for name, tensor in seen.items():
            save(name, tensor)

    print("wrote %s: %d tokens, transformers %s, %s" % (args.out, len(ids), transformers.__version__, args.dtype))
    print("  hidden_states[0] -> embed.npy, [1..%d] -> layers.npy[0..%d], hook on layer %d -> layers.npy[%d], "
          "hidden_states[%d] -> final_norm.npy" % (L - 1, L - 2, L - 1, L - 1, L))
    return 0


if __name__ == "__main__":
    sys.exit(main())
