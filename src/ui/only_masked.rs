//! The "only masked" box: the part of the picture the model sees when it inpaints only the masked
//! area. Computed in `logic` when the document revision or the inpaint settings change; the canvas
//! only draws it.

use crate::config::{Mode, Settings};
use crate::document::{Document, PixelRect};
use crate::request::InpaintArea;

/// Everything the box depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Inputs {
    revision: u64,
    mask_blur_px: u32,
    padding_px: u32,
    invert_mask: bool,
    width_px: u32,
    height_px: u32,
}

impl Inputs {
    /// `None` when no box applies (no picture, no mask, or not image to image "only masked").
    fn of(doc: Option<&Document>, settings: &Settings) -> Option<Self> {
        let doc = doc.filter(|d| d.has_mask())?;
        let s = &settings.img2img;
        (settings.mode == Mode::ImageToImage && s.inpaint_area == InpaintArea::OnlyMasked).then(|| Self {
            revision: doc.revision(),
            mask_blur_px: s.mask_blur,
            padding_px: s.padding,
            invert_mask: s.invert_mask,
            width_px: settings.params.width,
            height_px: settings.params.height,
        })
    }
}

/// The last box and what it was computed from.
#[derive(Debug, Default)]
pub struct OnlyMaskedBox {
    computed: Option<(Inputs, Option<PixelRect>)>,
}

impl OnlyMaskedBox {
    /// The box for `doc` under `settings`, in image pixels; recomputed only when its inputs
    /// changed, and not during a brush stroke (the last box stays until the stroke ends).
    pub fn update(&mut self, doc: Option<&Document>, settings: &Settings) -> Option<PixelRect> {
        let inputs = Inputs::of(doc, settings)?;
        let stroking = doc.is_some_and(Document::stroking);
        match self.computed {
            Some((seen, region)) if seen == inputs || stroking => region,
            _ => {
                let doc = doc?;
                let s = &settings.img2img;
                let mask = crate::imaging::processed_mask(doc.mask(), s.invert_mask, s.mask_blur);
                let region = crate::imaging::only_masked_region(
                    &mask,
                    s.padding,
                    settings.params.width,
                    settings.params.height,
                )
                .map(|(x0, y0, x1, y1)| PixelRect { x0, y0, x1, y1 });
                self.computed = Some((inputs, region));
                region
            }
        }
    }

    /// True when the next [`Self::update`] would compute a new box (the app then asks for a frame).
    pub fn is_stale(&self, doc: Option<&Document>, settings: &Settings) -> bool {
        !doc.is_some_and(Document::stroking)
            && Inputs::of(doc, settings).is_some_and(|i| self.computed.is_none_or(|(seen, _)| seen != i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masked_doc() -> Document {
        let mut mask = image::GrayImage::new(64, 64);
        for y in 40..50 {
            for x in 40..50 {
                mask.put_pixel(x, y, image::Luma([255]));
            }
        }
        Document::from_layers(image::RgbImage::new(64, 64), mask)
    }

    fn only_masked_settings() -> Settings {
        let mut settings = Settings {
            mode: Mode::ImageToImage,
            ..Settings::default()
        };
        settings.img2img.inpaint_area = InpaintArea::OnlyMasked;
        settings.img2img.mask_blur = 0;
        settings.img2img.padding = 4;
        settings.params.width = 16;
        settings.params.height = 16;
        settings
    }

    #[test]
    fn the_box_holds_the_mask_and_follows_the_settings() {
        let doc = masked_doc();
        let mut settings = only_masked_settings();
        let mut boxed = OnlyMaskedBox::default();
        assert!(boxed.is_stale(Some(&doc), &settings));
        let region = boxed.update(Some(&doc), &settings).unwrap();
        assert!(
            region.x0 <= 40 && region.y0 <= 40 && region.x1 >= 50 && region.y1 >= 50,
            "{region:?}"
        );
        assert!(!boxed.is_stale(Some(&doc), &settings));
        settings.img2img.padding = 12;
        assert!(boxed.is_stale(Some(&doc), &settings));
        let wider = boxed.update(Some(&doc), &settings).unwrap();
        assert!(wider.width() >= region.width());
        settings.img2img.inpaint_area = InpaintArea::WholePicture;
        assert_eq!(boxed.update(Some(&doc), &settings), None);
        assert!(!boxed.is_stale(Some(&doc), &settings));
    }

    #[test]
    fn no_box_without_a_mask() {
        let doc = Document::new(image::RgbImage::new(64, 64));
        let mut boxed = OnlyMaskedBox::default();
        assert_eq!(boxed.update(Some(&doc), &only_masked_settings()), None);
        assert_eq!(boxed.update(None, &only_masked_settings()), None);
    }
}
