//! Name mapping from the diffusers layout (what candle's modules ask for) to the original LDM/CompVis single-file layout.
//! Pure string functions of the geometry; no tensor is copied or renamed on disk.

use super::config::UnetGeometry;

/// Key prefix of the UNet in an LDM single file.
pub const LDM_UNET_PREFIX: &str = "model.diffusion_model.";
/// Key prefix of the VAE in an LDM single file.
pub const LDM_VAE_PREFIX: &str = "first_stage_model.";
/// Key prefix of the SD 1.x text encoder in an LDM single file.
pub const LDM_CLIP_PREFIX: &str = "cond_stage_model.transformer.";

/// Splits `"a.3.rest"` into `("a", 3, "rest")` for a given head `a`.
fn indexed<'a>(name: &'a str, head: &str) -> Option<(usize, &'a str)> {
    let rest = name.strip_prefix(head)?.strip_prefix('.')?;
    let (idx, rest) = rest.split_once('.')?;
    Some((idx.parse().ok()?, rest))
}

fn unet_resnet(rest: &str) -> Option<String> {
    let (layer, param) = rest.split_once('.')?;
    let ldm = match layer {
        "norm1" => "in_layers.0",
        "conv1" => "in_layers.2",
        "time_emb_proj" => "emb_layers.1",
        "norm2" => "out_layers.0",
        "conv2" => "out_layers.3",
        "conv_shortcut" => "skip_connection",
        _ => return None,
    };
    Some(format!("{ldm}.{param}"))
}

/// The LDM key (with `model.diffusion_model.` prefix) of a diffusers-layout UNet parameter.
pub fn unet_key(name: &str, g: &UnetGeometry) -> Option<String> {
    let per_level = g.num_res_blocks + 1;
    let levels = g.channel_mult.len();
    let body = if let Some(p) = name.strip_prefix("conv_in.") {
        format!("input_blocks.0.0.{p}")
    } else if let Some(p) = name.strip_prefix("time_embedding.linear_1.") {
        format!("time_embed.0.{p}")
    } else if let Some(p) = name.strip_prefix("time_embedding.linear_2.") {
        format!("time_embed.2.{p}")
    } else if let Some(p) = name.strip_prefix("conv_norm_out.") {
        format!("out.0.{p}")
    } else if let Some(p) = name.strip_prefix("conv_out.") {
        format!("out.2.{p}")
    } else if let Some((i, rest)) = indexed(name, "down_blocks") {
        if let Some((j, rest)) = indexed(rest, "resnets") {
            format!("input_blocks.{}.0.{}", 1 + i * per_level + j, unet_resnet(rest)?)
        } else if let Some((j, rest)) = indexed(rest, "attentions") {
            format!("input_blocks.{}.1.{rest}", 1 + i * per_level + j)
        } else {
            let p = rest.strip_prefix("downsamplers.0.conv.")?;
            format!("input_blocks.{}.0.op.{p}", (i + 1) * per_level)
        }
    } else if let Some(rest) = name.strip_prefix("mid_block.") {
        if let Some((j, rest)) = indexed(rest, "resnets") {
            format!("middle_block.{}.{}", j * 2, unet_resnet(rest)?)
        } else {
            let (_, rest) = indexed(rest, "attentions")?;
            format!("middle_block.1.{rest}")
        }
    } else if let Some((i, rest)) = indexed(name, "up_blocks") {
        if let Some((j, rest)) = indexed(rest, "resnets") {
            format!("output_blocks.{}.0.{}", i * per_level + j, unet_resnet(rest)?)
        } else if let Some((j, rest)) = indexed(rest, "attentions") {
            format!("output_blocks.{}.1.{rest}", i * per_level + j)
        } else {
            let p = rest.strip_prefix("upsamplers.0.conv.")?;
            let level = levels.checked_sub(1 + i)?;
            let slot = if *g.attention_levels.get(level)? { 2 } else { 1 };
            format!(
                "output_blocks.{}.{slot}.conv.{p}",
                i * per_level + g.num_res_blocks
            )
        }
    } else {
        return None;
    };
    Some(format!("{LDM_UNET_PREFIX}{body}"))
}

fn vae_resnet(rest: &str) -> String {
    match rest.strip_prefix("conv_shortcut.") {
        Some(p) => format!("nin_shortcut.{p}"),
        None => rest.to_owned(),
    }
}

fn vae_attention(rest: &str) -> Option<String> {
    let (layer, param) = rest.rsplit_once('.')?;
    let ldm = match layer {
        "group_norm" => "norm",
        "to_q" | "query" => "q",
        "to_k" | "key" => "k",
        "to_v" | "value" => "v",
        "to_out.0" | "proj_attn" => "proj_out",
        _ => return None,
    };
    Some(format!("{ldm}.{param}"))
}

fn vae_mid(rest: &str) -> Option<String> {
    if let Some((j, rest)) = indexed(rest, "resnets") {
        Some(format!("mid.block_{}.{}", j + 1, vae_resnet(rest)))
    } else {
        let (_, rest) = indexed(rest, "attentions")?;
        Some(format!("mid.attn_1.{}", vae_attention(rest)?))
    }
}

/// True for names the encoder and decoder share: conv_in, conv_out, the output norm and the mid block.
fn is_vae_shared(rest: &str) -> bool {
    ["conv_norm_out.", "conv_in.", "conv_out.", "mid_block."]
        .iter()
        .any(|p| rest.starts_with(p))
}

/// The LDM name of a shared encoder/decoder parameter (see [`is_vae_shared`]).
fn vae_shared(rest: &str) -> Option<String> {
    if let Some(p) = rest.strip_prefix("conv_norm_out.") {
        Some(format!("norm_out.{p}"))
    } else if let Some(rest) = rest.strip_prefix("mid_block.") {
        vae_mid(rest)
    } else {
        Some(rest.to_owned())
    }
}

/// The LDM key (with `first_stage_model.` prefix) of a diffusers-layout VAE parameter.
pub fn vae_key(name: &str, levels: usize) -> Option<String> {
    let body = if let Some(rest) = name.strip_prefix("encoder.") {
        let inner = if is_vae_shared(rest) {
            vae_shared(rest)?
        } else {
            {
                let (i, rest) = indexed(rest, "down_blocks")?;
                match indexed(rest, "resnets") {
                    Some((j, rest)) => format!("down.{i}.block.{j}.{}", vae_resnet(rest)),
                    None => format!(
                        "down.{i}.downsample.conv.{}",
                        rest.strip_prefix("downsamplers.0.conv.")?
                    ),
                }
            }
        };
        format!("encoder.{inner}")
    } else if let Some(rest) = name.strip_prefix("decoder.") {
        let inner = if is_vae_shared(rest) {
            vae_shared(rest)?
        } else {
            {
                let (i, rest) = indexed(rest, "up_blocks")?;
                // diffusers counts decoder levels from the bottom, LDM from the top.
                let level = levels.checked_sub(1 + i)?;
                match indexed(rest, "resnets") {
                    Some((j, rest)) => format!("up.{level}.block.{j}.{}", vae_resnet(rest)),
                    None => format!(
                        "up.{level}.upsample.conv.{}",
                        rest.strip_prefix("upsamplers.0.conv.")?
                    ),
                }
            }
        };
        format!("decoder.{inner}")
    } else if name.starts_with("quant_conv.") || name.starts_with("post_quant_conv.") {
        name.to_owned()
    } else {
        return None;
    };
    Some(format!("{LDM_VAE_PREFIX}{body}"))
}

/// The LDM key of a text-encoder parameter (`text_model.…` in transformers' layout).
pub fn clip_key(name: &str) -> String {
    format!("{LDM_CLIP_PREFIX}{name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sd15_unet_names() {
        let g = UnetGeometry::sd15();
        let k = |n: &str| unet_key(n, &g).unwrap();
        assert_eq!(
            k("conv_in.weight"),
            "model.diffusion_model.input_blocks.0.0.weight"
        );
        assert_eq!(
            k("down_blocks.1.resnets.1.conv1.bias"),
            "model.diffusion_model.input_blocks.5.0.in_layers.2.bias"
        );
        assert_eq!(
            k("down_blocks.0.attentions.1.proj_in.weight"),
            "model.diffusion_model.input_blocks.2.1.proj_in.weight"
        );
        assert_eq!(
            k("down_blocks.2.downsamplers.0.conv.weight"),
            "model.diffusion_model.input_blocks.9.0.op.weight"
        );
        assert_eq!(
            k("mid_block.resnets.1.time_emb_proj.weight"),
            "model.diffusion_model.middle_block.2.emb_layers.1.weight"
        );
        assert_eq!(
            k("up_blocks.0.upsamplers.0.conv.weight"),
            "model.diffusion_model.output_blocks.2.1.conv.weight"
        );
        assert_eq!(
            k("up_blocks.1.upsamplers.0.conv.bias"),
            "model.diffusion_model.output_blocks.5.2.conv.bias"
        );
        assert_eq!(
            k("up_blocks.3.attentions.2.transformer_blocks.0.attn2.to_k.weight"),
            "model.diffusion_model.output_blocks.11.1.transformer_blocks.0.attn2.to_k.weight"
        );
        assert_eq!(
            k("up_blocks.2.resnets.0.conv_shortcut.weight"),
            "model.diffusion_model.output_blocks.6.0.skip_connection.weight"
        );
        assert_eq!(k("conv_out.bias"), "model.diffusion_model.out.2.bias");
        assert!(unet_key("nonsense.weight", &g).is_none());
    }

    #[test]
    fn sd15_vae_names() {
        let k = |n: &str| vae_key(n, 4).unwrap();
        assert_eq!(
            k("encoder.down_blocks.1.resnets.0.conv_shortcut.weight"),
            "first_stage_model.encoder.down.1.block.0.nin_shortcut.weight"
        );
        assert_eq!(
            k("encoder.down_blocks.0.downsamplers.0.conv.bias"),
            "first_stage_model.encoder.down.0.downsample.conv.bias"
        );
        assert_eq!(
            k("decoder.up_blocks.0.resnets.2.norm1.weight"),
            "first_stage_model.decoder.up.3.block.2.norm1.weight"
        );
        assert_eq!(
            k("decoder.up_blocks.2.upsamplers.0.conv.weight"),
            "first_stage_model.decoder.up.1.upsample.conv.weight"
        );
        assert_eq!(
            k("decoder.mid_block.attentions.0.to_out.0.weight"),
            "first_stage_model.decoder.mid.attn_1.proj_out.weight"
        );
        assert_eq!(
            k("encoder.mid_block.resnets.1.conv2.weight"),
            "first_stage_model.encoder.mid.block_2.conv2.weight"
        );
        assert_eq!(
            k("encoder.conv_norm_out.bias"),
            "first_stage_model.encoder.norm_out.bias"
        );
        assert_eq!(
            k("post_quant_conv.weight"),
            "first_stage_model.post_quant_conv.weight"
        );
    }
}
