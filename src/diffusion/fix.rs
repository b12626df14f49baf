//! ADetailer's flow ("fix faces", "fix hands"): after a generation, or on an existing picture,
//! detect faces or hands and repaint each one with an only-masked inpaint of its grown box, in order, each on the previous
//! result — through the one inpainting pipeline ([`pipeline::generate_with`]).
//!
//! As ADetailer v24.8.0 runs it (`scripts/!adetailer.py` `_postprocess_image_inner`): detection j
//! is inpainted with seed + j, batch 1, the generation's size, steps, sampler and CFG, "original"
//! masked content, the fix's mask blur, padding and strength, and no ControlNet; its keys go into
//! the infotext of the generation ([`crate::infotext::adetailer`]).

use image::RgbImage;

use super::DiffusionError;
use super::model::SdModel;
use super::pipeline::{self, JobControl, Observer};
use crate::detect::{self, Detection, FaceModel};
use crate::infotext;
use crate::params::GenerationParams;
use crate::prompt::ClipTokenizer;
use crate::request::{
    FixSettings, FixTarget, GeneratedImage, Img2ImgSettings, InitImage, InpaintArea, MaskedContent,
    ResizeMode, StepInfo,
};

/// Passes steps and warnings on, keeps the images (the fix sends only its final pictures).
struct Quiet<'a> {
    inner: &'a mut dyn Observer,
}

impl Observer for Quiet<'_> {
    fn on_step(&mut self, info: StepInfo, x0: &candle_core::Tensor) -> Result<(), DiffusionError> {
        self.inner.on_step(info, x0)
    }

    fn on_image(&mut self, _image: &GeneratedImage) {}

    fn on_warning(&mut self, message: &str) {
        self.inner.on_warning(message);
    }
}

/// The detections a fix repaints in `picture` for its first target, in the detector's order.
///
/// # Errors
/// The detector could not run.
pub fn find(picture: &RgbImage, fix: &FixSettings) -> Result<Vec<Detection>, DiffusionError> {
    find_target(picture, fix.target, fix.confidence)
}

/// The detections of `target` scoring at least `confidence`, in the detector's order.
fn find_target(
    picture: &RgbImage,
    target: FixTarget,
    confidence: f32,
) -> Result<Vec<Detection>, DiffusionError> {
    match target {
        FixTarget::Faces => detect::detect_faces(picture, FaceModel::Short, confidence)
            .map_err(|e| DiffusionError::Input(format!("face detection failed: {e}"))),
        FixTarget::Hands => detect::hands::detect_hands(picture, confidence, None)
            .map_err(|e| DiffusionError::Input(format!("hand detection failed: {e}"))),
    }
}

/// A fix with its ControlNet loaded (the unit of [`FixSettings::control`], when set).
#[derive(Clone, Copy)]
pub struct FixJob<'a> {
    /// What to fix and how.
    pub settings: &'a FixSettings,
    /// The fix's ControlNet.
    pub control: Option<&'a JobControl>,
}

/// [`pipeline::generate_with`], then the fix on every image when `fix` is given (or, with
/// [`FixSettings::picture_only`], the fix alone on the init image). Observers get the fixed
/// images only.
///
/// # Errors
/// What generating or detecting can fail with; a fix of a picture without an init image.
pub fn generate_and_fix(
    model: &SdModel,
    tokenizer: &ClipTokenizer,
    params: &GenerationParams,
    init: Option<&InitImage>,
    controls: &[JobControl],
    fix: Option<FixJob<'_>>,
    observer: &mut dyn Observer,
) -> Result<Vec<GeneratedImage>, DiffusionError> {
    let Some(FixJob {
        settings: fix,
        control: fix_control,
    }) = fix
    else {
        return pipeline::generate_with(model, tokenizer, params, init, controls, observer);
    };
    let mut params = params.clone();
    infotext::adetailer::write(&mut params.extra, fix, fix_control.map(|c| c.label.as_str()));
    let base = if fix.picture_only {
        let init =
            init.ok_or_else(|| DiffusionError::Input("fixing a picture needs the picture (--init)".into()))?;
        vec![GeneratedImage {
            index: 0,
            seed: params.seed,
            width: init.image.width(),
            height: init.image.height(),
            rgb: init.image.as_raw().clone(),
            infotext: String::new(),
        }]
    } else {
        pipeline::generate_with(
            model,
            tokenizer,
            &params,
            init,
            controls,
            &mut Quiet { inner: observer },
        )?
    };
    let mut out = Vec::with_capacity(base.len());
    for image in base {
        let fixed = fix_picture(model, tokenizer, &params, image, fix, fix_control, observer)?;
        observer.on_image(&fixed);
        out.push(fixed);
    }
    Ok(out)
}

/// Repaints every detection in `image` (seed + j for detection j). A picture-only fix takes the
/// infotext of its first inpaint (the one with the base seed).
fn fix_picture(
    model: &SdModel,
    tokenizer: &ClipTokenizer,
    params: &GenerationParams,
    image: GeneratedImage,
    fix: &FixSettings,
    fix_control: Option<&JobControl>,
    observer: &mut dyn Observer,
) -> Result<GeneratedImage, DiffusionError> {
    let mut picture = RgbImage::from_raw(image.width, image.height, image.rgb)
        .ok_or_else(|| DiffusionError::Input("the picture has the wrong size".into()))?;
    let mut infotext = image.infotext;
    // ADetailer's tabs: each target on the result of the one before; detection j of a tab is
    // inpainted with seed + j.
    for target in std::iter::once(fix.target).chain(fix.more_targets.iter().copied()) {
        let found = find_target(&picture, target, fix.confidence)?;
        if found.is_empty() {
            let what = match target {
                FixTarget::Faces => "fix faces: no face found",
                FixTarget::Hands => "fix hands: no hand found",
            };
            observer.on_warning(&format!("{what} (confidence {})", fix.confidence));
        }
        let mut j = 0u64;
        for d in &found {
            let Some(mask) =
                detect::adetailer_box_mask(d, picture.width(), picture.height(), fix.dilate_erode)
            else {
                continue;
            };
            let mut p = params.clone();
            if !fix.prompt.is_empty() {
                p.prompt.clone_from(&fix.prompt);
            }
            if !fix.negative_prompt.is_empty() {
                p.negative_prompt.clone_from(&fix.negative_prompt);
            }
            p.seed = image.seed.wrapping_add(j);
            p.batch_size = 1;
            p.batch_count = 1;
            p.denoising_strength = Some(fix.strength);
            let init = InitImage {
                image: picture.clone(),
                mask: Some(mask),
                settings: Img2ImgSettings {
                    resize_mode: ResizeMode::JustResize,
                    mask_blur: fix.mask_blur,
                    masked_content: MaskedContent::Original,
                    inpaint_area: if fix.only_masked {
                        InpaintArea::OnlyMasked
                    } else {
                        InpaintArea::WholePicture
                    },
                    padding: fix.padding,
                    invert_mask: false,
                    mask_weight: Img2ImgSettings::default().mask_weight,
                    soft: fix.soft,
                },
            };
            let pass = pipeline::generate_with(
                model,
                tokenizer,
                &p,
                Some(&init),
                fix_control.map_or(&[][..], std::slice::from_ref),
                &mut Quiet { inner: observer },
            )?;
            let Some(done) = pass.into_iter().next() else {
                return Err(DiffusionError::Input("an inpaint pass returned no image".into()));
            };
            if infotext.is_empty() {
                infotext.clone_from(&done.infotext);
            }
            picture = RgbImage::from_raw(done.width, done.height, done.rgb)
                .ok_or_else(|| DiffusionError::Input("an inpaint pass returned the wrong size".into()))?;
            j += 1;
        }
    }
    if infotext.is_empty() {
        // Nothing was repainted: the picture as it came, described by the request.
        infotext = infotext::render(params, params.a1111_schedule_label(), &infotext::version());
    }
    Ok(GeneratedImage {
        index: image.index,
        seed: image.seed,
        width: picture.width(),
        height: picture.height(),
        rgb: picture.into_raw(),
        infotext,
    })
}
