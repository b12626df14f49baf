//! The faces or hands of the last Find faces / Find hands: each detection is its own region of the
//! mask, listed with its score, and the user can leave any of them out or grow or shrink it
//! (ADetailer applies every detection as found; here a wrong one is one click away from being
//! dropped, and a box that misses a chin or a finger is a drag away from covering it).

use eframe::egui;

use super::i18n::{tr, trf};
use crate::request::FixTarget;

/// Most pixels a region can be grown or shrunk by, each side.
const MAX_GROW_PX: i32 = 256;

/// One detection: its score, its mask as found, whether it stays in the mask, and how many
/// pixels each side it is grown (negative: shrunk).
struct Region {
    score: f32,
    mask: image::GrayImage,
    kept: bool,
    grow_px: i32,
}

impl Region {
    /// The region grown or shrunk by `grow_px` on each side: the box around what was found, moved
    /// out (or in) and clipped to the picture. Detections are boxes (ADetailer's masks for its
    /// MediaPipe models are), so the box is the region; `None` when nothing is left of it.
    fn adjusted(&self) -> Option<image::GrayImage> {
        if self.grow_px == 0 {
            return Some(self.mask.clone());
        }
        let (w, h) = self.mask.dimensions();
        let (mut x0, mut y0, mut x1, mut y1) = (u32::MAX, u32::MAX, 0, 0);
        for (x, y, p) in self.mask.enumerate_pixels() {
            if p.0[0] > 0 {
                x0 = x0.min(x);
                y0 = y0.min(y);
                x1 = x1.max(x + 1);
                y1 = y1.max(y + 1);
            }
        }
        if x0 >= x1 {
            return None;
        }
        let g = i64::from(self.grow_px);
        let clip = |v: i64, max: u32| v.clamp(0, i64::from(max)) as u32;
        let (x0, y0) = (clip(i64::from(x0) - g, w), clip(i64::from(y0) - g, h));
        let (x1, y1) = (clip(i64::from(x1) + g, w), clip(i64::from(y1) + g, h));
        (x0 < x1 && y0 < y1).then(|| {
            image::GrayImage::from_fn(w, h, |x, y| {
                image::Luma([if (x0..x1).contains(&x) && (y0..y1).contains(&y) {
                    255
                } else {
                    0
                }])
            })
        })
    }
}

/// The detections of one Find, each with its own mask and whether it stays in the mask.
pub struct Found {
    target: FixTarget,
    regions: Vec<Region>,
}

impl Found {
    /// Every region kept.
    pub fn new(target: FixTarget, regions: Vec<(f32, image::GrayImage)>) -> Self {
        Self {
            target,
            regions: regions
                .into_iter()
                .map(|(score, mask)| Region {
                    score,
                    mask,
                    kept: true,
                    grow_px: 0,
                })
                .collect(),
        }
    }

    /// No detection at all.
    pub fn is_empty(&self) -> bool {
        self.regions.is_empty()
    }

    /// The size of the picture the regions were found in.
    pub fn size(&self) -> Option<(u32, u32)> {
        self.regions.first().map(|r| r.mask.dimensions())
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
        for region in self
            .regions
            .iter()
            .filter(|r| r.kept && r.mask.dimensions() == (w, h))
        {
            if let Some(adjusted) = region.adjusted() {
                for (dst, src) in mask.iter_mut().zip(adjusted.iter()) {
                    *dst = (*dst).max(*src);
                }
            }
        }
        mask
    }

    /// One row per region: a checkbox "Face 1 · 93 %" and how many pixels it is grown; true when
    /// anything changed.
    pub fn ui(&mut self, ui: &mut egui::Ui) -> bool {
        let mut changed = false;
        egui::Grid::new("found-regions-grid").show(ui, |ui| {
            for (i, region) in self.regions.iter_mut().enumerate() {
                let score = format!("{:.0}", region.score * 100.0);
                let label = match self.target {
                    FixTarget::Faces => trf("Face {n} · {score} %", &[("n", &(i + 1)), ("score", &score)]),
                    FixTarget::Hands => trf("Hand {n} · {score} %", &[("n", &(i + 1)), ("score", &score)]),
                };
                changed |= ui.checkbox(&mut region.kept, label).changed();
                changed |= ui
                    .add_enabled(
                        region.kept,
                        egui::DragValue::new(&mut region.grow_px)
                            .range(-MAX_GROW_PX..=MAX_GROW_PX)
                            .prefix(tr("grow "))
                            .suffix(tr(" px")),
                    )
                    .on_hover_text(tr("pixels added on each side of the box (negative: taken off)"))
                    .changed();
                ui.end_row();
            }
        });
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
        found.regions[1].kept = false;
        let first = found.mask((8, 4));
        assert_eq!(first, square(0, 2));
        found.regions[0].kept = false;
        assert!(found.mask((8, 4)).pixels().all(|p| p.0[0] == 0));
        // A region made for another size is never smeared over the picture.
        assert!(found.mask((4, 4)).pixels().all(|p| p.0[0] == 0));
    }

    #[test]
    fn a_region_grows_and_shrinks_as_a_box_clipped_to_the_picture() {
        let boxed = |x0: u32, y0: u32, x1: u32, y1: u32| {
            image::GrayImage::from_fn(16, 16, |x, y| {
                image::Luma([if (x0..x1).contains(&x) && (y0..y1).contains(&y) {
                    255
                } else {
                    0
                }])
            })
        };
        let mut found = Found::new(FixTarget::Hands, vec![(0.8, boxed(4, 5, 8, 9))]);
        found.regions[0].grow_px = 2;
        assert_eq!(found.mask((16, 16)), boxed(2, 3, 10, 11));
        found.regions[0].grow_px = 6;
        assert_eq!(
            found.mask((16, 16)),
            boxed(0, 0, 14, 15),
            "clipped at the picture's edge"
        );
        found.regions[0].grow_px = -1;
        assert_eq!(found.mask((16, 16)), boxed(5, 6, 7, 8));
        found.regions[0].grow_px = -2;
        assert!(
            found.mask((16, 16)).pixels().all(|p| p.0[0] == 0),
            "shrunk to nothing, it leaves the mask"
        );
    }
}
