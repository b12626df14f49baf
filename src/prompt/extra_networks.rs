//! A1111's extra-network tags in prompts (`<lora:name:te[:unet]>`, `<lyco:…>`): taken out of the
//! text before it is encoded, and handed to the engine as the LoRA set of the job.

/// An extra-network tag that cannot be read; the message quotes it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadTag(pub String);

/// A `<lora:name:te[:unet]>` tag from a prompt.
#[derive(Debug, Clone, PartialEq)]
pub struct LoraTag {
    /// Name (file stem).
    pub name: String,
    /// Text-encoder multiplier.
    pub te: f32,
    /// UNet multiplier.
    pub unet: f32,
}

/// Takes A1111's extra-network tags (`<lora:…>`, `<lyco:…>`) out of a prompt: the text without
/// them, and the LoRA tags in order. Other tags (`<hypernet:…>`) are removed and listed as unknown.
///
/// # Errors
/// A tag whose multiplier is not a number (the message quotes it).
pub fn extract_tags(prompt: &str) -> Result<(String, Vec<LoraTag>, Vec<String>), BadTag> {
    let mut text = String::with_capacity(prompt.len());
    let mut tags = Vec::new();
    let mut unknown = Vec::new();
    let mut rest = prompt;
    while let Some(start) = rest.find('<') {
        let after = &rest[start + 1..];
        let Some(end) = after.find('>') else {
            break;
        };
        let inner = &after[..end];
        let Some((kind, args)) = inner.split_once(':') else {
            text.push_str(&rest[..=start]);
            rest = after;
            continue;
        };
        let is_word = !kind.is_empty() && kind.chars().all(|c| c.is_alphanumeric() || c == '_');
        if !is_word || args.is_empty() {
            text.push_str(&rest[..=start]);
            rest = after;
            continue;
        }
        text.push_str(&rest[..start]);
        rest = &after[end + 1..];
        match kind {
            "lora" | "lyco" => {
                let parts: Vec<&str> = args.split(':').collect();
                let num = |s: &str| {
                    s.trim()
                        .parse::<f32>()
                        .map_err(|_| BadTag(format!("<{inner}>: '{s}' is not a number")))
                };
                let te = parts.get(1).map(|s| num(s)).transpose()?.unwrap_or(1.0);
                let unet = parts.get(2).map(|s| num(s)).transpose()?.unwrap_or(te);
                tags.push(LoraTag {
                    name: parts[0].trim().to_owned(),
                    te,
                    unet,
                });
            }
            _ => unknown.push(format!("<{inner}>")),
        }
    }
    text.push_str(rest);
    Ok((text, tags, unknown))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_extracted_like_a1111() {
        let (text, tags, unknown) =
            extract_tags("a cat <lora:xss3-0:1>, <lora:blindbox_v1_mix:0.8:0.5> sitting <hypernet:h:1>")
                .unwrap();
        assert_eq!(text, "a cat ,  sitting ");
        assert_eq!(
            tags,
            vec![
                LoraTag {
                    name: "xss3-0".into(),
                    te: 1.0,
                    unet: 1.0
                },
                LoraTag {
                    name: "blindbox_v1_mix".into(),
                    te: 0.8,
                    unet: 0.5
                },
            ]
        );
        assert_eq!(unknown, vec!["<hypernet:h:1>".to_owned()]);
        let (text, tags, _) = extract_tags("<lora:style> x < y > z <not a tag>").unwrap();
        assert_eq!(text, " x < y > z <not a tag>");
        assert_eq!(tags[0].te, 1.0);
        assert!(extract_tags("<lora:a:heavy>").unwrap_err().0.contains("heavy"));
        let (_, tags, _) = extract_tags("<lora:neg:-0.5>").unwrap();
        assert_eq!((tags[0].te, tags[0].unet), (-0.5, -0.5));
    }
}
