//! `easel generate … --fix faces|hands`: ADetailer's after-step on the command line (the flow itself is
//! `easel::diffusion::fix`, run by the engine as part of the job).

use clap::Args;
use easel::request::{FixSettings, FixTarget};

use crate::bad;

/// The fix flags of `easel generate`.
#[derive(Args, Debug, Default)]
pub struct FixArgs {
    /// After generating, find and repaint these (ADetailer's flow, its defaults): `faces`, `hands`
    /// or both (`faces,hands`: one after the other, like ADetailer's 1st and 2nd tab). With
    /// --init and neither --strength nor --mask, the --init picture itself is fixed.
    #[arg(long, value_name = "faces", value_delimiter = ',')]
    pub fix: Vec<String>,
    /// Prompt of the fix [default: the prompt].
    #[arg(long, requires = "fix")]
    pub fix_prompt: Option<String>,
    /// Negative prompt of the fix [default: the negative prompt].
    #[arg(long, requires = "fix")]
    pub fix_negative_prompt: Option<String>,
    /// Detector score threshold of the fix [default: 0.5].
    #[arg(long, requires = "fix", value_name = "F")]
    pub fix_confidence: Option<f32>,
    /// Denoising strength of each fix inpaint [default: 0.4].
    #[arg(long, requires = "fix", value_name = "F")]
    pub fix_strength: Option<f32>,
    /// A ControlNet for every fix inpaint (ADetailer's ControlNet option): an inpaint model keeps
    /// each face's structure (inpaint preprocessor), a tile model its detail (tile_resample).
    #[arg(long, requires = "fix", value_name = "MODEL")]
    pub fix_control: Option<std::path::PathBuf>,
}

/// The fix of a generate command; `picture_only` when the init picture is to be fixed as it is.
pub fn settings(args: &FixArgs, picture_only: bool) -> anyhow::Result<Option<FixSettings>> {
    if args.fix.is_empty() {
        return Ok(None);
    }
    let mut targets = Vec::new();
    for what in &args.fix {
        let this = match what.trim().to_ascii_lowercase().as_str() {
            "faces" | "face" => FixTarget::Faces,
            "hands" | "hand" => FixTarget::Hands,
            other => return Err(bad(format!("unknown --fix '{other}'; use faces or hands"))),
        };
        if targets.contains(&this) {
            return Err(bad(format!("--fix lists '{what}' twice")));
        }
        targets.push(this);
    }
    let mut fix = FixSettings {
        target: targets.first().copied().unwrap_or_default(),
        more_targets: targets.get(1..).unwrap_or_default().to_vec(),
        picture_only,
        ..FixSettings::default()
    };
    if let Some(p) = &args.fix_prompt {
        fix.prompt.clone_from(p);
    }
    if let Some(p) = &args.fix_negative_prompt {
        fix.negative_prompt.clone_from(p);
    }
    for (name, value, slot) in [
        ("--fix-confidence", args.fix_confidence, &mut fix.confidence),
        ("--fix-strength", args.fix_strength, &mut fix.strength),
    ] {
        if let Some(v) = value {
            if !(0.0..=1.0).contains(&v) {
                return Err(bad(format!("{name} must be between 0 and 1, got {v}")));
            }
            *slot = v;
        }
    }
    if let Some(model) = &args.fix_control {
        use easel::imaging::ops::HintPreprocessor;
        let name = model
            .file_name()
            .map(|n| n.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        let mut unit = easel::request::ControlUnit::new(model.clone());
        unit.preprocessor = if name.contains("inpaint") {
            HintPreprocessor::InpaintOnly
        } else if name.contains("tile") {
            HintPreprocessor::TileResample {
                down_sampling_rate: 1.0,
            }
        } else {
            HintPreprocessor::None
        };
        fix.control = Some(unit);
    }
    Ok(Some(fix))
}
