#!/usr/bin/env python3
"""PyTorch + diffusers reference timings for `easel bench`: the same full-size SD 1.5 networks with
random weights, the same shapes, the same thread count, f32 on the CPU.

    python benches/torch_reference.py [--size 512] [--repeats 2] [--threads N]

Needs torch and diffusers (tested with torch 2.15.0 and diffusers 0.42.1 from PyPI; transformers for
CLIP). Prints lines in `easel bench`'s wording so that `scripts/bench_vs_torch.sh` can pair them.
Not run by CI (no Python there); the numbers go into the README's Performance section.
"""

import argparse
import os
import resource
import time


def best_of(repeats, f):
    best = float("inf")
    for _ in range(max(1, repeats)):
        t = time.perf_counter()
        f()
        best = min(best, time.perf_counter() - t)
    return best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    args = ap.parse_args()

    import torch
    from diffusers import AutoencoderKL, ControlNetModel, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")

    started = time.perf_counter()
    # SD 1.5's published configs (runwayml/stable-diffusion-v1-5 unet/vae, openai clip-vit-large-patch14).
    unet = UNet2DConditionModel(
        sample_size=64,
        in_channels=4,
        out_channels=4,
        block_out_channels=(320, 640, 1280, 1280),
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        layers_per_block=2,
        cross_attention_dim=768,
        attention_head_dim=8,
        norm_num_groups=32,
    ).eval()
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(128, 256, 512, 512),
        layers_per_block=2,
        latent_channels=4,
        norm_num_groups=32,
        sample_size=512,
    ).eval()
    clip = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=49408,
            hidden_size=768,
            intermediate_size=3072,
            num_hidden_layers=12,
            num_attention_heads=12,
            max_position_embeddings=77,
            hidden_act="quick_gelu",
        )
    ).eval()
    print(f"built SD 1.5 networks with random weights in {time.perf_counter() - started:.2f} s (F32)")

    lat = args.size // 8
    ids = torch.tensor([[49406 + (i % 2) for i in range(77)]])
    x = torch.randn(2, 4, lat, lat)
    ctx = torch.randn(2, 77, 768)
    z = torch.randn(1, 4, lat, lat)
    t = torch.tensor([500.0])
    with torch.inference_mode():
        clip_s = best_of(args.repeats, lambda: clip(ids))
        print(f"CLIP encode, one chunk: {clip_s:.3f} s")
        unet_s = best_of(args.repeats, lambda: unet(x, t, encoder_hidden_states=ctx))
        print(f"UNet step, {args.size}x{args.size}, CFG batch 2: {unet_s:.2f} s")
        vae_s = best_of(args.repeats, lambda: vae.decode(z))
        print(f"VAE decode, {args.size}x{args.size}: {vae_s:.2f} s")
        # One ControlNet call per model call (SD 1.5's ControlNet: the UNet's encoder + hint block).
        controlnet = ControlNetModel.from_unet(unet).eval()
        hint = torch.rand(2, 3, args.size, args.size)
        cn_s = best_of(args.repeats, lambda: controlnet(x, t, encoder_hidden_states=ctx, controlnet_cond=hint,
                                                        return_dict=False))
        print(f"ControlNet, {args.size}x{args.size}, CFG batch 2: {cn_s:.2f} s ({cn_s / unet_s * 100:.0f} % of a UNet step)")
    rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"peak RSS: {rss_kib / (1 << 20):.2f} GiB")


if __name__ == "__main__":
    main()
