//! The faces or hands of the last Find faces / Find hands: each detection is its own region of the
//! mask, listed with its score, and the user can leave any of them out (ADetailer applies every
//! detection; here a wrong one is one click away from being dropped).

use eframe::egui;

use super::i18n::{tr, trf};
use crate::request::FixTarget;

/// The detections of one Find, each with its own mask and whether it stays in the mask.
pub struct Found {
    target: FixTarget,
    /// (score, the region's mask, kept).
    regions: Vec<(f32, image::GrayImage, bool)>,
}

impl Found {
    /// Every region kept.
    pub fn new(target: FixTarget, regions: Vec<(f32, image::GrayImage)>) -> Self {
        Self {
            target,
            regions: regions.into_iter().map(|(s, m)| (s, m, true)).collect(),
        }
    }

    /// No detection at all.
    pub fn is_empty(&self) -> bool {
        self.regions.is_empty()
    }

    /// The size of the picture the regions were found in.
    pub fn size(&self) -> Option<(u32, u32)> {
        self.regions.first().map(|(_, m, _)| m.dimensions())
    }

    /// The window's title: what was found.
    pub fn title(&self) -> &'static str {
        match self.target {
            FixTarget::Faces => tr("Faces found"),
            FixTarget::Hands => tr("Hands found"),
        }
    }

    /// The union of the kept regions, `size` pixels (empty where a region's size differs).
    pub fn mask(&self, (w, h): (u32, u32)) -> image::GrayImage {
        let mut mask = image::GrayImage::new(w, h);
        for (_, region, kept) in &self.regions {
            if *kept && region.dimensions() == (w, h) {
                for (dst, src) in mask.iter_mut().zip(region.iter()) {
                    *dst = (*dst).max(*src);
                }
            }
        }
        mask
    }

    /// One checkbox per region, "Face 1 · 93 %"; true when one was ticked or unticked.
    pub fn ui(&mut self, ui: &mut egui::Ui) -> bool {
        let mut changed = false;
        for (i, (score, _, kept)) in self.regions.iter_mut().enumerate() {
            let score = *score;
            let label = match self.target {
                FixTarget::Faces => trf(
                    "Face {n} · {score} %",
                    &[("n", &(i + 1)), ("score", &format!("{:.0}", score * 100.0))],
                ),
                FixTarget::Hands => trf(
                    "Hand {n} · {score} %",
                    &[("n", &(i + 1)), ("score", &format!("{:.0}", score * 100.0))],
                ),
            };
            changed |= ui.checkbox(kept, label).changed();
        }
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn square(x0: u32, x1: u32) -> image::GrayImage {
        image::GrayImage::from_fn(8, 4, |x, _| {
            image::Luma([if (x0..x1).contains(&x) { 255 } else { 0 }])
        })
    }

    #[test]
    fn the_mask_is_the_union_of_the_kept_regions() {
        let mut found = Found::new(FixTarget::Faces, vec![(0.9, square(0, 2)), (0.6, square(5, 8))]);
        let all = found.mask((8, 4));
        assert_eq!(all.pixels().filter(|p| p.0[0] == 255).count(), (2 + 3) * 4);
        found.regions[1].2 = false;
        let first = found.mask((8, 4));
        assert_eq!(first, square(0, 2));
        found.regions[0].2 = false;
        assert!(found.mask((8, 4)).pixels().all(|p| p.0[0] == 0));
        // A region made for another size is never smeared over the picture.
        assert!(found.mask((4, 4)).pixels().all(|p| p.0[0] == 0));
    }
}
