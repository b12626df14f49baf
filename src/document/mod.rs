//! The canvas document: the picture, the inpainting mask painted over it, and undo/redo.
//!
//! Pure and testable: no egui, no GPU. Mask edits are recorded as the 64×64 tiles they touched
//! (before and after), so undo memory grows with what was painted, not with the canvas size.
//! A new picture (a generation result, a dropped image) is a transaction too, so nothing is ever
//! replaced without a way back. [`Document::take_dirty`] tells the canvas which rectangle of which
//! layer to upload to the GPU. [`Document::versions`] and [`Document::from_versions`] carry the
//! pictures of that history through a file ([`file`]).

pub mod file;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use image::{GrayImage, RgbImage};
use serde::{Deserialize, Serialize};

/// Side of an undo tile in pixels.
pub const TILE: u32 = 64;
/// Undo history is trimmed (oldest first) above this many bytes.
pub const UNDO_BUDGET_BYTES: usize = 512 << 20;

/// A pixel rectangle `[x0, x1) × [y0, y1)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PixelRect {
    /// Left (inclusive).
    pub x0: u32,
    /// Top (inclusive).
    pub y0: u32,
    /// Right (exclusive).
    pub x1: u32,
    /// Bottom (exclusive).
    pub y1: u32,
}

impl PixelRect {
    /// The smallest rectangle holding both.
    #[must_use]
    pub fn union(self, o: Self) -> Self {
        Self {
            x0: self.x0.min(o.x0),
            y0: self.y0.min(o.y0),
            x1: self.x1.max(o.x1),
            y1: self.y1.max(o.y1),
        }
    }

    /// Width in pixels.
    pub fn width(self) -> u32 {
        self.x1 - self.x0
    }

    /// Height in pixels.
    pub fn height(self) -> u32 {
        self.y1 - self.y0
    }
}

/// The brush: diameter in image pixels, hardness and opacity in [0, 1].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Brush {
    /// Diameter in image pixels.
    pub size: f32,
    /// 1 = hard edge; 0 = soft all the way from the centre.
    pub hardness: f32,
    /// Strength of one stroke (overlapping dabs in one stroke do not add up).
    pub opacity: f32,
    /// Erase the mask instead of painting it.
    pub erase: bool,
}

impl Default for Brush {
    fn default() -> Self {
        Self {
            size: 48.0,
            hardness: 0.7,
            opacity: 1.0,
            erase: false,
        }
    }
}

impl Brush {
    /// Coverage of a dab at distance `d` from its centre, in [0, 1].
    pub fn coverage(&self, d: f32) -> f32 {
        let r = (self.size * 0.5).max(0.5);
        if d >= r {
            return 0.0;
        }
        let hard = self.hardness.clamp(0.0, 1.0) * r;
        let a = if d <= hard {
            1.0
        } else {
            let t = (d - hard) / (r - hard).max(1e-6);
            // Smoothstep falloff from the hard core to the rim.
            1.0 - t * t * (3.0 - 2.0 * t)
        };
        a * self.opacity.clamp(0.0, 1.0)
    }
}

/// Which layer changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layer {
    /// The picture.
    Image,
    /// The mask.
    Mask,
}

#[derive(Debug, Clone)]
struct TileEdit {
    tile: (u32, u32),
    before: Vec<u8>,
    after: Vec<u8>,
}

/// Gives every picture held by a document an id no other picture of this process has.
static NEXT_PICTURE_ID: AtomicU64 = AtomicU64::new(1);

fn next_picture_id() -> u64 {
    NEXT_PICTURE_ID.fetch_add(1, Ordering::Relaxed)
}

/// One version of the document: its picture, the mask it had, and its label (the parameters
/// that made it, when known). Pictures are shared, not copied, between the history and exports.
#[derive(Debug, Clone)]
pub struct Version {
    /// The picture.
    pub image: Arc<RgbImage>,
    /// The mask as it was when this version was left (255 = repaint).
    pub mask: Arc<GrayImage>,
    /// A label, such as the A1111 parameters that made the picture.
    pub label: Option<String>,
    /// Which picture this is: equal ids mean equal pixels (within one process), so encoded
    /// copies can be reused.
    picture_id: u64,
}

impl Version {
    /// A version of `image` with `mask` (of the same size, or it is replaced by an empty one).
    pub fn new(image: RgbImage, mask: GrayImage, label: Option<String>) -> Self {
        let mask = if mask.dimensions() == image.dimensions() {
            mask
        } else {
            GrayImage::new(image.width(), image.height())
        };
        Self {
            image: Arc::new(image),
            mask: Arc::new(mask),
            label,
            picture_id: next_picture_id(),
        }
    }

    /// Equal for two versions with the same picture pixels (never equal across different
    /// pictures), for caches of encoded pictures.
    pub fn picture_id(&self) -> u64 {
        self.picture_id
    }
}

#[derive(Debug, Clone)]
enum Edit {
    Mask(Vec<TileEdit>),
    Image { before: Version, after: Version },
}

impl Edit {
    fn bytes(&self) -> usize {
        match self {
            Edit::Mask(tiles) => tiles.iter().map(|t| t.before.len() + t.after.len()).sum(),
            Edit::Image { before, after } => {
                before.image.len() + before.mask.len() + after.image.len() + after.mask.len()
            }
        }
    }
}

/// A stroke in progress: the mask as it was under each touched tile, and the stroke's own coverage.
struct Stroke {
    brush: Brush,
    before: BTreeMap<(u32, u32), Vec<u8>>,
    coverage: BTreeMap<(u32, u32), Vec<u8>>,
    last: Option<(f32, f32)>,
    /// Distance walked since the last dab.
    carry: f32,
}

/// The document: picture, mask and history.
pub struct Document {
    image: Arc<RgbImage>,
    /// Id of the picture in `image` (see [`Version::picture_id`]).
    picture_id: u64,
    /// Label of the picture shown.
    label: Option<String>,
    mask: GrayImage,
    undo: Vec<Edit>,
    redo: Vec<Edit>,
    stroke: Option<Stroke>,
    dirty: Vec<(Layer, PixelRect)>,
    revision: u64,
}

impl Document {
    /// A document showing `image` with an empty mask.
    pub fn new(image: RgbImage) -> Self {
        let (w, h) = image.dimensions();
        Self {
            image: Arc::new(image),
            picture_id: next_picture_id(),
            label: None,
            mask: GrayImage::new(w, h),
            undo: Vec::new(),
            redo: Vec::new(),
            stroke: None,
            dirty: vec![(Layer::Image, full(w, h)), (Layer::Mask, full(w, h))],
            revision: 0,
        }
    }

    /// A document restored from saved layers (no history). The mask is resized to the image if needed.
    pub fn from_layers(image: RgbImage, mask: GrayImage) -> Self {
        let mut doc = Self::new(image);
        if mask.dimensions() == doc.image.dimensions() {
            doc.mask = mask;
        }
        doc
    }

    /// The picture.
    pub fn image(&self) -> &RgbImage {
        &self.image
    }

    /// The mask (255 = repaint).
    pub fn mask(&self) -> &GrayImage {
        &self.mask
    }

    /// `(width, height)`.
    pub fn size(&self) -> (u32, u32) {
        self.image.dimensions()
    }

    /// Changes with every edit, undo and redo (for autosave and caches).
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// Which picture is shown (see [`Version::picture_id`]): it changes whenever the picture
    /// does (a new version, or undo/redo across one), not with mask edits, and no two pictures of
    /// any document share it. Results staged over the picture remember it.
    pub fn picture_revision(&self) -> u64 {
        self.picture_id
    }

    /// True if any mask pixel is set.
    pub fn has_mask(&self) -> bool {
        self.mask.as_raw().iter().any(|v| *v > 0)
    }

    /// The picture before the latest new version (for before/after comparison).
    pub fn previous_image(&self) -> Option<&RgbImage> {
        self.undo.iter().rev().find_map(|e| match e {
            Edit::Image { before, .. } => Some(before.image.as_ref()),
            Edit::Mask(_) => None,
        })
    }

    /// The label of the picture shown (such as the parameters that made it).
    pub fn label(&self) -> Option<&str> {
        self.label.as_deref()
    }

    /// Labels the picture shown; the label is saved with it and comes back with undo and redo.
    pub fn set_label(&mut self, label: Option<String>) {
        fn newest_image_edit(edits: &mut [Edit]) -> Option<(&mut Version, &mut Version)> {
            edits.iter_mut().rev().find_map(|e| match e {
                Edit::Image { before, after } => Some((before, after)),
                Edit::Mask(_) => None,
            })
        }
        if self.label == label {
            return;
        }
        // The history's copies of this version (what redo would bring back after an undo, or
        // undo after a redo) get the label too.
        let id = self.picture_id;
        if let Some((_, after)) = newest_image_edit(&mut self.undo)
            && after.picture_id == id
        {
            after.label.clone_from(&label);
        }
        if let Some((before, _)) = newest_image_edit(&mut self.redo)
            && before.picture_id == id
        {
            before.label.clone_from(&label);
        }
        self.label = label;
        self.revision += 1;
    }

    /// The versions of the picture, oldest first, and which one is shown: the pictures before
    /// each new picture in the undo history, the picture shown (with the mask as it is now), and
    /// the pictures that redo would bring back. Mask edits between them are not versions.
    pub fn versions(&self) -> (Vec<Version>, usize) {
        let mut versions: Vec<Version> = self
            .undo
            .iter()
            .filter_map(|e| match e {
                Edit::Image { before, .. } => Some(before.clone()),
                Edit::Mask(_) => None,
            })
            .collect();
        let current = versions.len();
        versions.push(self.current_version());
        versions.extend(self.redo.iter().rev().filter_map(|e| match e {
            Edit::Image { after, .. } => Some(after.clone()),
            Edit::Mask(_) => None,
        }));
        (versions, current)
    }

    /// A document showing `versions[current]`, where undo steps back through the versions before
    /// it and redo forward through those after it. `current` past the end shows the last one;
    /// `None` when there are no versions.
    pub fn from_versions(versions: Vec<Version>, current: usize) -> Option<Self> {
        let current = current.min(versions.len().checked_sub(1)?);
        let mut doc = Self::new(RgbImage::new(0, 0));
        doc.install(&versions[current]);
        let mut rest = versions.into_iter();
        let mut before = rest.next()?;
        let mut edits = Vec::new();
        for after in rest {
            edits.push(Edit::Image {
                before,
                after: after.clone(),
            });
            before = after;
        }
        let redo = edits.split_off(current);
        doc.undo = edits;
        doc.redo = redo.into_iter().rev().collect();
        let (w, h) = doc.size();
        doc.dirty = vec![(Layer::Image, full(w, h)), (Layer::Mask, full(w, h))];
        doc.revision = 0;
        Some(doc)
    }

    /// The picture shown as a version (its mask copied).
    fn current_version(&self) -> Version {
        Version {
            image: Arc::clone(&self.image),
            mask: Arc::new(self.mask.clone()),
            label: self.label.clone(),
            picture_id: self.picture_id,
        }
    }

    /// Shows `version`: its picture, mask and label.
    fn install(&mut self, version: &Version) {
        self.image = Arc::clone(&version.image);
        self.picture_id = version.picture_id;
        self.mask.clone_from(&version.mask);
        self.label.clone_from(&version.label);
        let (w, h) = self.size();
        self.mark(Layer::Image, full(w, h));
        self.mark(Layer::Mask, full(w, h));
    }

    /// Can undo.
    pub fn can_undo(&self) -> bool {
        !self.undo.is_empty()
    }

    /// Can redo.
    pub fn can_redo(&self) -> bool {
        !self.redo.is_empty()
    }

    /// Bytes held by the history.
    pub fn history_bytes(&self) -> usize {
        self.undo.iter().chain(&self.redo).map(Edit::bytes).sum()
    }

    /// Regions changed since the last call, per layer (for incremental texture uploads).
    pub fn take_dirty(&mut self) -> Vec<(Layer, PixelRect)> {
        std::mem::take(&mut self.dirty)
    }

    fn mark(&mut self, layer: Layer, rect: PixelRect) {
        self.revision += 1;
        match self.dirty.iter_mut().find(|(l, _)| *l == layer) {
            Some((_, r)) => *r = r.union(rect),
            None => self.dirty.push((layer, rect)),
        }
    }

    fn push(&mut self, edit: Edit) {
        self.redo.clear();
        self.undo.push(edit);
        let mut total: usize = self.undo.iter().map(Edit::bytes).sum();
        while total > UNDO_BUDGET_BYTES && self.undo.len() > 1 {
            total -= self.undo.remove(0).bytes();
        }
    }

    fn tile_rect(&self, (tx, ty): (u32, u32)) -> PixelRect {
        let (w, h) = self.size();
        PixelRect {
            x0: tx * TILE,
            y0: ty * TILE,
            x1: ((tx + 1) * TILE).min(w),
            y1: ((ty + 1) * TILE).min(h),
        }
    }

    fn read_tile(&self, tile: (u32, u32)) -> Vec<u8> {
        gray_region(&self.mask, self.tile_rect(tile))
    }

    fn write_tile(&mut self, tile: (u32, u32), data: &[u8]) {
        let r = self.tile_rect(tile);
        let w = r.width() as usize;
        let stride = self.mask.width() as usize;
        let raw: &mut [u8] = &mut self.mask;
        for (i, y) in (r.y0..r.y1).enumerate() {
            let row = y as usize * stride + r.x0 as usize;
            raw[row..row + w].copy_from_slice(&data[i * w..(i + 1) * w]);
        }
        self.mark(Layer::Mask, r);
    }

    /// Starts a brush stroke at image position `(x, y)` (may be outside the image).
    pub fn begin_stroke(&mut self, brush: Brush, x: f32, y: f32) {
        self.end_stroke();
        self.stroke = Some(Stroke {
            brush,
            before: BTreeMap::new(),
            coverage: BTreeMap::new(),
            last: None,
            carry: 0.0,
        });
        self.stroke_to(x, y);
    }

    /// Continues the stroke to `(x, y)`, placing dabs every tenth of the brush size.
    pub fn stroke_to(&mut self, x: f32, y: f32) {
        let Some(mut stroke) = self.stroke.take() else {
            return;
        };
        let spacing = (stroke.brush.size * 0.1).max(0.5);
        match stroke.last {
            None => self.dab(&mut stroke, x, y),
            Some((lx, ly)) => {
                let (dx, dy) = (x - lx, y - ly);
                let len = (dx * dx + dy * dy).sqrt();
                let mut t = spacing - stroke.carry;
                while t <= len {
                    let f = t / len.max(1e-6);
                    self.dab(&mut stroke, lx + dx * f, ly + dy * f);
                    t += spacing;
                }
                stroke.carry = len - (t - spacing);
            }
        }
        stroke.last = Some((x, y));
        self.stroke = Some(stroke);
    }

    fn dab(&mut self, stroke: &mut Stroke, cx: f32, cy: f32) {
        let (w, h) = self.size();
        let r = stroke.brush.size * 0.5 + 1.0;
        let x0 = (cx - r).floor().max(0.0) as u32;
        let y0 = (cy - r).floor().max(0.0) as u32;
        let x1 = ((cx + r).ceil().max(0.0) as u32).min(w);
        let y1 = ((cy + r).ceil().max(0.0) as u32).min(h);
        if x0 >= x1 || y0 >= y1 {
            return;
        }
        for ty in y0 / TILE..=(y1 - 1) / TILE {
            for tx in x0 / TILE..=(x1 - 1) / TILE {
                let tile = (tx, ty);
                if !stroke.before.contains_key(&tile) {
                    let data = self.read_tile(tile);
                    stroke.coverage.insert(tile, vec![0; data.len()]);
                    stroke.before.insert(tile, data);
                }
                let tr = self.tile_rect(tile);
                let tw = tr.width();
                let (Some(cov), Some(before)) = (stroke.coverage.get_mut(&tile), stroke.before.get(&tile))
                else {
                    continue;
                };
                let mut out = Vec::with_capacity(before.len());
                for (i, b) in before.iter().enumerate() {
                    let px = tr.x0 + i as u32 % tw;
                    let py = tr.y0 + i as u32 / tw;
                    if (x0..x1).contains(&px) && (y0..y1).contains(&py) {
                        let d = ((px as f32 + 0.5 - cx).powi(2) + (py as f32 + 0.5 - cy).powi(2)).sqrt();
                        let a = (stroke.brush.coverage(d) * 255.0).round() as u8;
                        cov[i] = cov[i].max(a);
                    }
                    out.push(apply_coverage(*b, cov[i], stroke.brush.erase));
                }
                self.write_tile(tile, &out);
            }
        }
    }

    /// Finishes the stroke as one undoable transaction.
    pub fn end_stroke(&mut self) {
        let Some(stroke) = self.stroke.take() else {
            return;
        };
        let tiles: Vec<TileEdit> = stroke
            .before
            .into_iter()
            .map(|(tile, before)| TileEdit {
                tile,
                after: self.read_tile(tile),
                before,
            })
            .filter(|t| t.before != t.after)
            .collect();
        if !tiles.is_empty() {
            self.push(Edit::Mask(tiles));
        }
    }

    /// True while a stroke is being painted.
    pub fn stroking(&self) -> bool {
        self.stroke.is_some()
    }

    /// Replaces the whole mask through `f(x, y, old) -> new`, as one transaction.
    fn map_mask(&mut self, f: impl Fn(u32, u32, u8) -> u8) {
        self.end_stroke();
        let (w, h) = self.size();
        let mut tiles = Vec::new();
        for ty in 0..h.div_ceil(TILE) {
            for tx in 0..w.div_ceil(TILE) {
                let tile = (tx, ty);
                let before = self.read_tile(tile);
                let r = self.tile_rect(tile);
                let tw = r.width();
                let after: Vec<u8> = before
                    .iter()
                    .enumerate()
                    .map(|(i, v)| f(r.x0 + i as u32 % tw, r.y0 + i as u32 / tw, *v))
                    .collect();
                if after != before {
                    self.write_tile(tile, &after);
                    tiles.push(TileEdit { tile, before, after });
                }
            }
        }
        if !tiles.is_empty() {
            self.push(Edit::Mask(tiles));
        }
    }

    /// Masks everything.
    pub fn fill_mask(&mut self) {
        self.map_mask(|_, _, _| 255);
    }

    /// Clears the mask.
    pub fn clear_mask(&mut self) {
        self.map_mask(|_, _, _| 0);
    }

    /// Replaces the mask with `mask` (same size as the picture) as one undoable step; a mask of
    /// another size is ignored.
    pub fn set_mask(&mut self, mask: &GrayImage) {
        if mask.dimensions() == self.size() {
            self.map_mask(|x, y, _| mask.get_pixel(x, y)[0]);
        }
    }

    /// Inverts the mask.
    pub fn invert_mask(&mut self) {
        self.map_mask(|_, _, v| 255 - v);
    }

    /// Fills (or, with `erase`, clears) the rectangle between two image points.
    pub fn fill_rect(&mut self, a: (f32, f32), b: (f32, f32), erase: bool) {
        let (x0, x1) = (a.0.min(b.0), a.0.max(b.0));
        let (y0, y1) = (a.1.min(b.1), a.1.max(b.1));
        let value = if erase { 0 } else { 255 };
        self.map_mask(|x, y, v| {
            let (px, py) = (x as f32 + 0.5, y as f32 + 0.5);
            if px >= x0 && px < x1 && py >= y0 && py < y1 {
                value
            } else {
                v
            }
        });
    }

    /// Fills (or clears) the inside of a closed polygon (lasso), even-odd rule at pixel centres.
    pub fn fill_polygon(&mut self, points: &[(f32, f32)], erase: bool) {
        if points.len() < 3 {
            return;
        }
        let value = if erase { 0 } else { 255 };
        let pts = points.to_vec();
        self.map_mask(move |x, y, v| {
            if point_in_polygon(&pts, x as f32 + 0.5, y as f32 + 0.5) {
                value
            } else {
                v
            }
        });
    }

    /// Replaces the picture (and mask) as one undoable step: a generation result or a dropped image.
    /// A picture of another size starts with an empty mask.
    pub fn set_image(&mut self, image: RgbImage) {
        self.end_stroke();
        let mask = if image.dimensions() == self.size() {
            self.mask.clone()
        } else {
            GrayImage::new(image.width(), image.height())
        };
        let before = self.current_version();
        let after = Version {
            image: Arc::new(image),
            mask: Arc::new(mask),
            label: None,
            picture_id: next_picture_id(),
        };
        self.install(&after);
        self.push(Edit::Image { before, after });
    }

    fn apply_edit(&mut self, edit: &Edit, forward: bool) {
        match edit {
            Edit::Mask(tiles) => {
                for t in tiles {
                    let data = if forward { &t.after } else { &t.before };
                    self.write_tile(t.tile, data);
                }
            }
            Edit::Image { before, after } => self.install(if forward { after } else { before }),
        }
    }

    /// Undoes the last transaction; false if there is none.
    pub fn undo(&mut self) -> bool {
        self.end_stroke();
        let Some(edit) = self.undo.pop() else {
            return false;
        };
        self.apply_edit(&edit, false);
        self.redo.push(edit);
        true
    }

    /// Redoes the last undone transaction; false if there is none.
    pub fn redo(&mut self) -> bool {
        self.end_stroke();
        let Some(edit) = self.redo.pop() else {
            return false;
        };
        self.apply_edit(&edit, true);
        self.undo.push(edit);
        true
    }
}

/// Copies a rectangle of a grey image (the mask), row by row.
pub fn gray_region(mask: &GrayImage, r: PixelRect) -> Vec<u8> {
    let mut out = Vec::with_capacity((r.width() * r.height()) as usize);
    for y in r.y0..r.y1 {
        let row = (y * mask.width()) as usize;
        out.extend_from_slice(&mask.as_raw()[row + r.x0 as usize..row + r.x1 as usize]);
    }
    out
}

/// Copies a rectangle of an RGB8 picture as opaque RGBA8 (what textures take).
pub fn rgba_region(image: &RgbImage, r: PixelRect) -> Vec<u8> {
    let mut out = Vec::with_capacity((r.width() * r.height() * 4) as usize);
    for y in r.y0..r.y1 {
        for x in r.x0..r.x1 {
            let p = image.get_pixel(x, y).0;
            out.extend_from_slice(&[p[0], p[1], p[2], 255]);
        }
    }
    out
}

fn full(w: u32, h: u32) -> PixelRect {
    PixelRect {
        x0: 0,
        y0: 0,
        x1: w,
        y1: h,
    }
}

/// Paint (`base + (255 − base)·a`) or erase (`base·(1 − a)`) with coverage `a`, rounded.
fn apply_coverage(base: u8, a: u8, erase: bool) -> u8 {
    let (b, a) = (u32::from(base), u32::from(a));
    if erase {
        ((b * (255 - a) + 127) / 255) as u8
    } else {
        (b + ((255 - b) * a + 127) / 255) as u8
    }
}

/// Even-odd point-in-polygon test.
pub fn point_in_polygon(points: &[(f32, f32)], x: f32, y: f32) -> bool {
    let mut inside = false;
    let mut j = points.len() - 1;
    for i in 0..points.len() {
        let (xi, yi) = points[i];
        let (xj, yj) = points[j];
        if (yi > y) != (yj > y) && x < (xj - xi) * (y - yi) / (yj - yi) + xi {
            inside = !inside;
        }
        j = i;
    }
    inside
}

/// Mask tools.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum Tool {
    /// Freehand brush (or eraser).
    #[default]
    Brush,
    /// Drag a rectangle to fill.
    Rect,
    /// Draw a closed outline to fill.
    Lasso,
}

/// Tool settings that persist.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct ToolSettings {
    /// Current tool.
    pub tool: Tool,
    /// Brush shape and mode (`erase` applies to every tool).
    pub brush: Brush,
    /// Show the mask overlay.
    pub show_mask: bool,
    /// Overlay colour (RGB) and opacity.
    pub mask_color: [u8; 3],
    /// Overlay opacity in [0, 1].
    pub mask_opacity: f32,
}

impl Default for ToolSettings {
    fn default() -> Self {
        Self {
            tool: Tool::Brush,
            brush: Brush::default(),
            show_mask: true,
            mask_color: [255, 60, 90],
            mask_opacity: 0.5,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(w: u32, h: u32) -> Document {
        Document::new(RgbImage::from_pixel(w, h, image::Rgb([10, 20, 30])))
    }

    #[test]
    fn stroke_undo_redo_round_trips_exactly() {
        let mut d = doc(300, 200);
        let empty = d.mask().clone();
        d.begin_stroke(Brush::default(), 10.0, 10.0);
        d.stroke_to(150.0, 120.0);
        d.stroke_to(290.0, 20.0);
        d.end_stroke();
        let painted = d.mask().clone();
        assert!(d.has_mask());
        assert!(d.undo());
        assert_eq!(d.mask(), &empty);
        assert!(d.redo());
        assert_eq!(d.mask(), &painted);
        assert!(!d.redo());
    }

    #[test]
    fn one_stroke_is_one_transaction_and_overlaps_do_not_build_up() {
        let mut d = doc(128, 128);
        let brush = Brush {
            opacity: 0.5,
            hardness: 1.0,
            size: 20.0,
            erase: false,
        };
        d.begin_stroke(brush, 30.0, 64.0);
        for _ in 0..10 {
            d.stroke_to(90.0, 64.0);
            d.stroke_to(30.0, 64.0);
        }
        d.end_stroke();
        // Half opacity over and over in one stroke stays at half.
        assert_eq!(d.mask().get_pixel(60, 64).0[0], 128);
        assert!(d.undo());
        assert!(!d.has_mask());
        assert!(!d.undo());
    }

    #[test]
    fn a_label_set_after_a_new_picture_comes_back_with_redo_and_undo() {
        let mut d = Document::new(RgbImage::new(4, 4));
        d.set_label(Some("first".into()));
        d.set_image(RgbImage::from_pixel(4, 4, image::Rgb([1, 1, 1])));
        d.set_label(Some("second".into()));
        d.fill_mask();
        d.undo();
        d.undo();
        assert_eq!(d.label(), Some("first"));
        d.set_label(Some("first, renamed".into()));
        d.redo();
        assert_eq!(d.label(), Some("second"));
        d.undo();
        assert_eq!(d.label(), Some("first, renamed"));
    }

    #[test]
    fn the_picture_revision_follows_the_picture_not_the_mask() {
        let mut d = Document::new(RgbImage::new(8, 8));
        let other = Document::new(RgbImage::new(8, 8));
        assert_ne!(
            d.picture_revision(),
            other.picture_revision(),
            "unique across documents"
        );
        let first = d.picture_revision();
        d.fill_mask();
        d.undo();
        assert_eq!(d.picture_revision(), first, "mask edits and their undo leave it");
        d.set_image(RgbImage::from_pixel(8, 8, image::Rgb([9, 9, 9])));
        let second = d.picture_revision();
        assert_ne!(second, first);
        d.undo();
        assert_eq!(
            d.picture_revision(),
            first,
            "undo across a version: the first picture again"
        );
        d.redo();
        assert_eq!(d.picture_revision(), second);
        d.set_image(RgbImage::from_pixel(8, 8, image::Rgb([9, 9, 9])));
        assert_ne!(d.picture_revision(), second, "equal pixels, but another picture");
    }

    #[test]
    fn eraser_clears_and_history_stores_only_touched_tiles() {
        let mut d = doc(1024, 1024);
        d.fill_mask();
        d.begin_stroke(
            Brush {
                erase: true,
                size: 10.0,
                ..Brush::default()
            },
            5.0,
            5.0,
        );
        d.end_stroke();
        assert_eq!(d.mask().get_pixel(5, 5).0[0], 0);
        assert_eq!(d.mask().get_pixel(500, 500).0[0], 255);
        // The fill touched every tile (1 MiB before + after); the dab one tile.
        let fill = 2 * 1024 * 1024;
        assert_eq!(d.history_bytes(), fill + 2 * (TILE * TILE) as usize);
    }

    #[test]
    fn invert_rect_and_lasso() {
        let mut d = doc(100, 100);
        d.fill_rect((10.0, 10.0), (20.0, 30.0), false);
        assert_eq!(d.mask().get_pixel(10, 10).0[0], 255);
        assert_eq!(d.mask().get_pixel(19, 29).0[0], 255);
        assert_eq!(d.mask().get_pixel(20, 30).0[0], 0);
        d.invert_mask();
        assert_eq!(d.mask().get_pixel(15, 15).0[0], 0);
        assert_eq!(d.mask().get_pixel(50, 50).0[0], 255);
        d.clear_mask();
        d.fill_polygon(&[(50.0, 10.0), (90.0, 90.0), (10.0, 90.0)], false);
        assert_eq!(d.mask().get_pixel(50, 60).0[0], 255);
        assert_eq!(d.mask().get_pixel(12, 12).0[0], 0);
        for _ in 0..4 {
            assert!(d.undo());
        }
        assert!(!d.has_mask());
    }

    #[test]
    fn new_picture_is_undoable_and_resets_a_mismatched_mask() {
        let mut d = doc(64, 64);
        d.fill_mask();
        d.set_image(RgbImage::new(32, 48));
        assert_eq!(d.size(), (32, 48));
        assert!(!d.has_mask());
        assert!(d.undo());
        assert_eq!(d.size(), (64, 64));
        assert!(d.has_mask());
    }

    #[test]
    fn dirty_rects_cover_edits() {
        let mut d = doc(256, 256);
        d.take_dirty();
        d.begin_stroke(Brush::default(), 200.0, 200.0);
        d.end_stroke();
        let dirty = d.take_dirty();
        assert_eq!(dirty.len(), 1);
        let (layer, r) = dirty[0];
        assert_eq!(layer, Layer::Mask);
        assert!(r.x0 <= 176 && r.x1 >= 224 && r.y0 <= 176 && r.y1 >= 224, "{r:?}");
        assert!(d.take_dirty().is_empty());
    }

    #[test]
    fn strokes_outside_the_image_do_nothing() {
        let mut d = doc(32, 32);
        d.begin_stroke(Brush::default(), -500.0, -500.0);
        d.stroke_to(-400.0, 900.0);
        d.end_stroke();
        assert!(!d.has_mask());
        assert!(!d.can_undo());
    }

    fn picture(w: u32, h: u32, shade: u8) -> RgbImage {
        RgbImage::from_pixel(w, h, image::Rgb([shade, 0, 0]))
    }

    #[test]
    fn versions_list_the_pictures_of_undo_and_redo_with_their_masks_and_labels() {
        let mut d = doc(64, 64);
        d.set_label(Some("first".into()));
        d.fill_rect((0.0, 0.0), (10.0, 10.0), false);
        let first_mask = d.mask().clone();
        d.set_image(picture(64, 64, 1));
        d.clear_mask();
        d.set_image(picture(32, 32, 2));
        d.set_label(Some("third".into()));
        d.fill_mask();
        d.set_image(picture(64, 64, 3));
        assert!(d.undo());
        // Picture 3 is a redo step; picture 2 is shown with its mask.
        let (versions, current) = d.versions();
        assert_eq!(current, 2);
        assert_eq!(versions.len(), 4);
        assert_eq!(
            *versions[0].image,
            RgbImage::from_pixel(64, 64, image::Rgb([10, 20, 30]))
        );
        assert_eq!(*versions[0].mask, first_mask);
        assert_eq!(versions[0].label.as_deref(), Some("first"));
        // The mask a version had when it was left (cleared on picture 1).
        assert!(versions[1].mask.as_raw().iter().all(|v| *v == 0));
        assert_eq!(versions[2].label.as_deref(), Some("third"));
        assert!(versions[2].mask.as_raw().iter().all(|v| *v == 255));
        assert_eq!(*versions[3].image, picture(64, 64, 3));
        // The history shares the shown picture instead of copying it.
        assert!(Arc::ptr_eq(&versions[2].image, &d.image));
    }

    #[test]
    fn a_document_from_versions_undoes_and_redoes_through_them() {
        let versions: Vec<Version> = (0..4u8)
            .map(|i| {
                let mask = GrayImage::from_pixel(16, 8, image::Luma([i * 10]));
                Version::new(picture(16, 8, i), mask, Some(format!("v{i}")))
            })
            .collect();
        let mut d = Document::from_versions(versions.clone(), 2).unwrap();
        assert_eq!(d.revision(), 0);
        assert_eq!(d.image(), &*versions[2].image);
        assert_eq!(d.mask(), &*versions[2].mask);
        assert_eq!(d.label(), Some("v2"));
        assert!(d.take_dirty().len() == 2, "the canvas uploads both layers");
        assert!(d.undo());
        assert!(d.undo());
        assert_eq!(d.image(), &*versions[0].image);
        assert_eq!(d.mask(), &*versions[0].mask);
        assert_eq!(d.label(), Some("v0"));
        assert!(!d.undo());
        for v in &versions[1..] {
            assert!(d.redo());
            assert_eq!(d.image(), &*v.image);
            assert_eq!(d.label(), v.label.as_deref());
        }
        assert!(!d.redo());
        // What it exports is what it was made from.
        let (again, current) = d.versions();
        assert_eq!(current, 3);
        assert_eq!(again.len(), 4);
        assert!(
            again
                .iter()
                .zip(&versions)
                .all(|(a, b)| a.image == b.image && a.mask == b.mask)
        );
        assert!(Document::from_versions(Vec::new(), 0).is_none());
        // An index past the end shows the newest.
        let d = Document::from_versions(versions.clone(), 99).unwrap();
        assert_eq!(d.image(), &*versions[3].image);
        assert!(!d.can_redo());
    }

    #[test]
    fn labels_change_the_revision_and_new_pictures_start_unlabelled() {
        let mut d = doc(8, 8);
        let r = d.revision();
        d.set_label(Some("a".into()));
        assert!(d.revision() > r);
        let r = d.revision();
        d.set_label(Some("a".into()));
        assert_eq!(d.revision(), r, "the same label is no change");
        d.set_image(picture(8, 8, 5));
        assert_eq!(d.label(), None);
        assert!(d.undo());
        assert_eq!(d.label(), Some("a"));
    }

    #[test]
    fn brush_coverage_profile() {
        let b = Brush {
            size: 20.0,
            hardness: 0.5,
            opacity: 1.0,
            erase: false,
        };
        assert_eq!(b.coverage(0.0), 1.0);
        assert_eq!(b.coverage(5.0), 1.0);
        assert!(b.coverage(7.5) > 0.4 && b.coverage(7.5) < 0.6);
        assert_eq!(b.coverage(10.0), 0.0);
    }
}
