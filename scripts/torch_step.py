"""The reference side of the H100 comparison (BENCHMARKS.md, "H100"): one QLoRA training step of
transformers + PEFT on gemma-2-2b's shapes, timed the way `maieutic bench` times ours (one optimizer step
= forward + backward with gradient checkpointing, clip, AdamW, and one scalar read back).

Runs offline: the weights are random (Gemma2ForCausalLM built from gemma-2-2b's config, as our
gemma-2-2b-random), since speed does not depend on their values. With bitsandbytes importable and
--quant nf4 the base is quantized as in our seed config (NF4, double quantization, fp16 compute); else the
base stays in --dtype (plain transformers + PEFT LoRA), and the JSON says which.

    python3 scripts/torch_step.py --batch 4 --seq 512 --out torch-step.json
"""

import argparse
import json
import os
import tempfile
import time

import torch
from peft import LoraConfig, get_peft_model
from transformers import Gemma2Config, Gemma2ForCausalLM

# src/config/gemma2.ts GEMMA2_2B (google/gemma-2-2b-jpn-it's config.json)
GEMMA2_2B = dict(
    vocab_size=256000,
    hidden_size=2304,
    intermediate_size=9216,
    num_hidden_layers=26,
    num_attention_heads=8,
    num_key_value_heads=4,
    head_dim=256,
    query_pre_attn_scalar=256,
    attn_logit_softcapping=50.0,
    final_logit_softcapping=30.0,
    sliding_window=4096,
    rms_norm_eps=1e-6,
    rope_theta=10000.0,
    max_position_embeddings=8192,
    hidden_activation="gelu_pytorch_tanh",
    eos_token_id=[1, 107],
    bos_token_id=2,
    pad_token_id=0,
)


def build(args):
    cfg = Gemma2Config(**GEMMA2_2B)
    cfg.num_hidden_layers = args.layers
    cfg._attn_implementation = "eager"  # as our attention (no flash/sdpa kernels)
    dtype = getattr(torch, args.dtype)
    quant = "none"
    if args.quant in ("auto", "nf4"):
        try:
            import bitsandbytes  # noqa: F401
            from transformers import BitsAndBytesConfig

            quant = "nf4"
        except ImportError:
            if args.quant == "nf4":
                raise
    torch.manual_seed(0)
    if quant == "nf4":
        # from_pretrained is the path that quantizes: save random weights, load them 4-bit.
        with torch.device("cuda"):
            dense = Gemma2ForCausalLM(cfg).to(dtype)
        tmp = tempfile.mkdtemp(prefix="gemma2-random-")
        dense.save_pretrained(tmp)
        del dense
        torch.cuda.empty_cache()
        bnb = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_use_double_quant=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_compute_dtype=torch.float16,
        )
        model = Gemma2ForCausalLM.from_pretrained(
            tmp, quantization_config=bnb, attn_implementation="eager", device_map={"": 0}
        )
    else:
        with torch.device("cuda"):
            model = Gemma2ForCausalLM(cfg).to(dtype)
    model.config.use_cache = False
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.enable_input_require_grads()
    lora = LoraConfig(
        r=16,
        lora_alpha=32,
        lora_dropout=0.1,
        bias="none",
        task_type="CAUSAL_LM",
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
    )
    model = get_peft_model(model, lora)
    # PEFT keeps LoRA weights in fp32 on a 4-bit base (prepare_model_for_kbit_training); do the same here.
    for p in model.parameters():
        if p.requires_grad:
            p.data = p.data.float()
    return model, quant


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=512)
    ap.add_argument("--layers", type=int, default=26)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--dtype", default="float16", choices=["float16", "bfloat16", "float32"])
    ap.add_argument("--quant", default="auto", choices=["auto", "nf4", "none"])
    ap.add_argument("--out", default="torch-step.json")
    args = ap.parse_args()

    model, quant = build(args)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=8e-5, weight_decay=0.06)
    g = torch.Generator(device="cuda").manual_seed(1)
    ids = torch.randint(3, GEMMA2_2B["vocab_size"], (args.batch, args.seq), device="cuda", generator=g)
    model.train()

    def step():
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.item()  # one readback per step, as ours

    for _ in range(args.warmup):
        step()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    times = []
    loss = None
    for _ in range(args.steps):
        t0 = time.perf_counter()
        loss = step()
        times.append(time.perf_counter() - t0)
    times.sort()
    med = times[len(times) // 2]
    result = dict(
        stack="transformers + PEFT" + (" + bitsandbytes NF4" if quant == "nf4" else f" ({args.dtype} base)"),
        quant=quant,
        dtype=args.dtype,
        batch=args.batch,
        seq=args.seq,
        layers=args.layers,
        steps=args.steps,
        s_per_step_median=med,
        s_per_step=times,
        tokens_per_s=args.batch * args.seq / med,
        peak_bytes=torch.cuda.max_memory_allocated(),
        loss=loss,
        torch=torch.__version__,
        gpu=torch.cuda.get_device_name(0),
        versions={m: __import__(m).__version__ for m in ("transformers", "peft")},
    )
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
