//! The canvas view: shows the document (picture + mask) with zoom and pan, paints the mask with the
//! brush, eraser, rectangle and lasso tools, and shows live previews while a job runs.
//!
//! With a wgpu renderer the picture is drawn by `shaders/canvas.wgsl` ([`super::canvas_gpu`]) and
//! only dirty rectangles are uploaded. Without one (tests) the same view falls back to egui textures.

use eframe::egui::{
    self, Color32, ColorImage, Key, KeyboardShortcut, Modifiers, TextureHandle, TextureOptions, Vec2,
};

use super::canvas_gpu::{CanvasCallback, CanvasUniforms, Upload};
use super::i18n::{tr, tr_noop};
use super::jobs::PreviewRegion;
use crate::document::{self, Document, Layer, PixelRect, Tool, ToolSettings};

/// Largest brush diameter, in image pixels.
const MAX_BRUSH_PX: f32 = 2048.0;
/// Width of the tool bar's number fields, in points: wide enough for "2048" and "100 %", so a
/// growing value never moves the buttons after it.
const FIELD_WIDTH_PT: f32 = 52.0;

const ZOOM_IN: KeyboardShortcut = KeyboardShortcut::new(Modifiers::NONE, Key::Plus);
const ZOOM_IN_EQ: KeyboardShortcut = KeyboardShortcut::new(Modifiers::NONE, Key::Equals);
const ZOOM_OUT: KeyboardShortcut = KeyboardShortcut::new(Modifiers::NONE, Key::Minus);
const ZOOM_FIT: KeyboardShortcut = KeyboardShortcut::new(Modifiers::NONE, Key::Num0);
const ZOOM_ONE: KeyboardShortcut = KeyboardShortcut::new(Modifiers::NONE, Key::Num1);
/// Undo (Ctrl+Z).
pub const UNDO: KeyboardShortcut = KeyboardShortcut::new(Modifiers::COMMAND, Key::Z);
/// Redo (Ctrl+Shift+Z).
pub const REDO: KeyboardShortcut = KeyboardShortcut::new(Modifiers::COMMAND.plus(Modifiers::SHIFT), Key::Z);
const SMALLER: KeyboardShortcut = KeyboardShortcut::new(Modifiers::NONE, Key::OpenBracket);
const BIGGER: KeyboardShortcut = KeyboardShortcut::new(Modifiers::NONE, Key::CloseBracket);
const SWAP_ERASE: KeyboardShortcut = KeyboardShortcut::new(Modifiers::NONE, Key::X);
const TOOL_BRUSH: KeyboardShortcut = KeyboardShortcut::new(Modifiers::NONE, Key::B);
const TOOL_RECT: KeyboardShortcut = KeyboardShortcut::new(Modifiers::NONE, Key::M);
const TOOL_LASSO: KeyboardShortcut = KeyboardShortcut::new(Modifiers::NONE, Key::L);
const TOGGLE_MASK: KeyboardShortcut = KeyboardShortcut::new(Modifiers::NONE, Key::H);

/// Every canvas shortcut, for the Help window.
pub const SHORTCUTS: [(&str, &str); 14] = [
    ("B", tr_noop("Brush")),
    ("M", tr_noop("Rectangle fill")),
    ("L", tr_noop("Lasso fill")),
    ("X", tr_noop("Paint / erase")),
    ("[ / ]", tr_noop("Brush smaller / bigger")),
    ("H", tr_noop("Show / hide the mask")),
    ("Ctrl+Z", tr_noop("Undo")),
    ("Ctrl+Shift+Z", tr_noop("Redo")),
    ("+ / -", tr_noop("Zoom in / out")),
    ("0", tr_noop("Fit the picture")),
    ("1", "100 %"),
    (tr_noop("Wheel / pinch"), tr_noop("Zoom")),
    (tr_noop("Space+drag, middle drag"), tr_noop("Pan")),
    (tr_noop("Hold C"), tr_noop("Compare with the previous version")),
];

/// A live preview: the step's latent-resolution picture, shown at the job's picture size.
struct Preview {
    texture: TextureHandle,
    /// The job's picture size, in image pixels.
    size_px: Vec2,
    /// Where on the document's picture it goes.
    region: PreviewRegion,
}

/// The brush diameter one `[` (`grow` false) or `]` (`grow` true) press gives: about 10 % smaller
/// or bigger, a whole number of pixels, at least one pixel of change, within 1 to 2048.
pub fn brush_step(size: f32, grow: bool) -> f32 {
    let size = size.round().clamp(1.0, MAX_BRUSH_PX);
    let next = if grow {
        (size * 1.1).round().max(size + 1.0)
    } else {
        (size / 1.1).round().min(size - 1.0)
    };
    next.clamp(1.0, MAX_BRUSH_PX)
}

/// The outline of a mask (pixels over half on, next to one that is not) as a texture image in
/// `color`, two pixels thick so that it stays visible when the picture is shown smaller.
fn mask_outline(mask: &image::GrayImage, color: Color32) -> ColorImage {
    let (w, h) = mask.dimensions();
    let on = |x: i64, y: i64| {
        x >= 0
            && y >= 0
            && x < i64::from(w)
            && y < i64::from(h)
            && mask.get_pixel(x as u32, y as u32).0[0] > 127
    };
    let mut pixels = vec![Color32::TRANSPARENT; w as usize * h as usize];
    for y in 0..i64::from(h) {
        for x in 0..i64::from(w) {
            if !on(x, y) {
                continue;
            }
            let edge = (-1..=1).any(|dy| (-1..=1).any(|dx| !on(x + dx, y + dy)));
            if edge {
                pixels[y as usize * w as usize + x as usize] = color;
            }
        }
    }
    ColorImage::new([w as usize, h as usize], pixels)
}

enum Gesture {
    Pan,
    Stroke,
    Rect(egui::Pos2),
    Lasso(Vec<egui::Pos2>),
}

/// The canvas state.
#[derive(Default)]
pub struct CanvasView {
    /// The open document.
    pub doc: Option<Document>,
    /// Live preview while a job runs (drawn over the document).
    preview: Option<Preview>,
    /// Points per image pixel; `None` = fit to the view.
    zoom: Option<f32>,
    pan: Vec2,
    gesture: Option<Gesture>,
    /// GPU path: what the next paint callback that runs uploads (see [`CanvasCallback::upload`]).
    pending: std::sync::Arc<std::sync::Mutex<Option<Upload>>>,
    /// Fallback path: egui textures of the picture and the tinted mask.
    image_tex: Option<TextureHandle>,
    mask_tex: Option<TextureHandle>,
    mask_tint: [u8; 3],
    /// "Only masked" region to outline, in image pixels (computed in `logic`, only drawn here).
    pub context_box: Option<PixelRect>,
    /// Showing the previous version while C is held.
    comparing: bool,
    compare_tex: Option<(TextureHandle, u64)>,
    /// Where the picture was drawn last frame, in points.
    pub image_rect: Option<egui::Rect>,
    /// The canvas area last frame, in points.
    pub view_rect: Option<egui::Rect>,
    /// Points per image pixel last frame (the status bar shows it as a percentage).
    pub shown_zoom: Option<f32>,
    /// The mask's outline, drawn over live previews; with the document revision it shows.
    outline_tex: Option<(TextureHandle, u64)>,
    /// The staged result shown over the picture, with its candidate id.
    staged: Option<(TextureHandle, u64)>,
}

impl CanvasView {
    /// Shows another document in place of the open one (a document file opened), fitted to the
    /// view; what was drawn for the old one is dropped.
    pub fn open_document(&mut self, doc: Document) {
        self.doc = Some(doc);
        self.zoom = None;
        self.pan = Vec2::ZERO;
        self.gesture = None;
        self.preview = None;
        self.compare_tex = None;
        self.outline_tex = None;
    }

    /// Opens a picture as a new version of the document (or a new document).
    pub fn set_picture(&mut self, image: image::RgbImage) {
        let resized = self.doc.as_ref().is_none_or(|d| d.size() != image.dimensions());
        match &mut self.doc {
            Some(doc) => doc.set_image(image),
            None => self.doc = Some(Document::new(image)),
        }
        if resized {
            self.zoom = None;
            self.pan = Vec2::ZERO;
        }
        self.preview = None;
    }

    /// Shows a live preview: `rgba` is `size` texels (latent resolution), stretched over
    /// `region` of the picture (over `size_px`, the running job's picture size in pixels, when
    /// no picture is open).
    pub fn set_preview(
        &mut self,
        ctx: &egui::Context,
        rgba: &[u8],
        size: [usize; 2],
        size_px: Vec2,
        region: PreviewRegion,
    ) {
        let image = ColorImage::from_rgba_unmultiplied(size, rgba);
        match &mut self.preview {
            Some(p) if p.texture.size() == size => {
                p.texture.set(image, TextureOptions::LINEAR);
                p.size_px = size_px;
                p.region = region;
            }
            _ => {
                self.preview = Some(Preview {
                    texture: ctx.load_texture("preview", image, TextureOptions::LINEAR),
                    size_px,
                    region,
                });
            }
        }
    }

    /// The mask outline texture for the document's current revision (`None` without a mask).
    fn outline_texture(&mut self, ctx: &egui::Context, color: Color32) -> Option<TextureHandle> {
        let doc = self.doc.as_ref().filter(|d| d.has_mask())?;
        let revision = doc.revision();
        // Not rebuilt during a brush stroke: the stroke shows through the mask overlay after it ends.
        if let Some((t, r)) = &self.outline_tex
            && (*r == revision || doc.stroking())
        {
            return Some(t.clone());
        }
        let tex = ctx.load_texture(
            "mask-outline",
            mask_outline(doc.mask(), color),
            TextureOptions::LINEAR,
        );
        self.outline_tex = Some((tex.clone(), revision));
        Some(tex)
    }

    /// Shows a staged result (`picture` with its candidate `id`) over the picture, or none.
    pub fn show_staged(&mut self, ctx: &egui::Context, staged: Option<(&image::RgbImage, u64)>) {
        let Some((picture, id)) = staged else {
            self.staged = None;
            return;
        };
        if self.staged.as_ref().is_some_and(|(_, shown)| *shown == id) {
            return;
        }
        let size = [picture.width() as usize, picture.height() as usize];
        let texture = ctx.load_texture(
            "staged",
            ColorImage::from_rgb(size, picture.as_raw()),
            TextureOptions::LINEAR,
        );
        self.staged = Some((texture, id));
    }

    /// Drops the preview (the job ended).
    pub fn clear_preview(&mut self) {
        self.preview = None;
    }

    /// The size shown: the document's picture, or the running job's while there is none.
    fn image_size(&self) -> Option<Vec2> {
        let doc = self.doc.as_ref().map(|d| {
            let (w, h) = d.size();
            Vec2::new(w as f32, h as f32)
        });
        doc.or_else(|| self.preview.as_ref().map(|p| p.size_px))
    }

    /// Moves document changes to the GPU upload or the fallback textures.
    fn sync(&mut self, ctx: &egui::Context, gpu: bool, tools: &ToolSettings) {
        let Some(doc) = &mut self.doc else {
            return;
        };
        let (w, h) = doc.size();
        let dirty = doc.take_dirty();
        if gpu {
            let full = whole(w, h);
            if dirty.is_empty() {
                return;
            }
            let Ok(mut slot) = self.pending.lock() else {
                return;
            };
            let mut upload = slot.take().unwrap_or_default();
            if upload.resize.is_some_and(|s| s != (w, h)) {
                upload = Upload::default();
            }
            for (layer, rect) in dirty {
                match layer {
                    Layer::Image => {
                        let rect = upload.image.as_ref().map_or(rect, |(r, _)| r.union(rect));
                        upload.image = Some((rect, document::rgba_region(doc.image(), rect)));
                        if rect == full {
                            upload.resize = Some((w, h));
                        }
                    }
                    Layer::Mask => {
                        let rect = upload.mask.as_ref().map_or(rect, |(r, _)| r.union(rect));
                        upload.mask = Some((rect, document::gray_region(doc.mask(), rect)));
                    }
                }
            }
            if upload.resize.is_some() || upload.image.is_some() || upload.mask.is_some() {
                *slot = Some(upload);
            }
            return;
        }
        let tint_changed = self.mask_tint != tools.mask_color;
        self.mask_tint = tools.mask_color;
        for (layer, rect) in dirty {
            match layer {
                Layer::Image => {
                    let rgba = document::rgba_region(doc.image(), rect);
                    let image = ColorImage::from_rgba_unmultiplied(
                        [rect.width() as usize, rect.height() as usize],
                        &rgba,
                    );
                    match &mut self.image_tex {
                        Some(t) if t.size() == [w as usize, h as usize] => {
                            t.set_partial(
                                [rect.x0 as usize, rect.y0 as usize],
                                image,
                                TextureOptions::LINEAR,
                            );
                        }
                        _ => {
                            let all = document::rgba_region(doc.image(), whole(w, h));
                            let image = ColorImage::from_rgba_unmultiplied([w as usize, h as usize], &all);
                            self.image_tex =
                                Some(ctx.load_texture("canvas-image", image, TextureOptions::LINEAR));
                        }
                    }
                }
                Layer::Mask => {
                    let tint = |r: PixelRect| {
                        let [cr, cg, cb] = self.mask_tint;
                        let pixels = document::gray_region(doc.mask(), r)
                            .into_iter()
                            .map(|m| Color32::from_rgba_unmultiplied(cr, cg, cb, m))
                            .collect();
                        ColorImage::new([r.width() as usize, r.height() as usize], pixels)
                    };
                    match &mut self.mask_tex {
                        Some(t) if t.size() == [w as usize, h as usize] && !tint_changed => {
                            t.set_partial(
                                [rect.x0 as usize, rect.y0 as usize],
                                tint(rect),
                                TextureOptions::NEAREST,
                            );
                        }
                        _ => {
                            self.mask_tex = Some(ctx.load_texture(
                                "canvas-mask",
                                tint(whole(w, h)),
                                TextureOptions::NEAREST,
                            ));
                        }
                    }
                }
            }
        }
    }

    /// Handles the tool, brush, mask-visibility, undo/redo and compare keys (not while typing).
    fn shortcuts(&mut self, ui: &egui::Ui, tools: &mut ToolSettings) {
        if ui.ctx().egui_wants_keyboard_input() {
            return;
        }
        ui.input_mut(|i| {
            if i.consume_shortcut(&REDO)
                && let Some(d) = &mut self.doc
            {
                d.redo();
            }
            if i.consume_shortcut(&UNDO)
                && let Some(d) = &mut self.doc
            {
                d.undo();
            }
            // Every press counts, however many arrive in one frame.
            for _ in 0..i.count_and_consume_key(SMALLER.modifiers, SMALLER.logical_key) {
                tools.brush.size = brush_step(tools.brush.size, false);
            }
            for _ in 0..i.count_and_consume_key(BIGGER.modifiers, BIGGER.logical_key) {
                tools.brush.size = brush_step(tools.brush.size, true);
            }
            if i.consume_shortcut(&SWAP_ERASE) {
                tools.brush.erase = !tools.brush.erase;
            }
            if i.consume_shortcut(&TOOL_BRUSH) {
                tools.tool = Tool::Brush;
            }
            if i.consume_shortcut(&TOOL_RECT) {
                tools.tool = Tool::Rect;
            }
            if i.consume_shortcut(&TOOL_LASSO) {
                tools.tool = Tool::Lasso;
            }
            if i.consume_shortcut(&TOGGLE_MASK) {
                tools.show_mask = !tools.show_mask;
            }
            self.comparing = i.key_down(Key::C) && i.modifiers.is_none();
        });
    }

    /// Draws the canvas into the remaining space and handles painting.
    pub fn ui(&mut self, ui: &mut egui::Ui, gpu: bool, tools: &mut ToolSettings, empty_hint: &str) {
        self.shortcuts(ui, tools);
        self.sync(ui.ctx(), gpu, tools);
        let (response, painter) = ui.allocate_painter(ui.available_size(), egui::Sense::click_and_drag());
        let view = response.rect;
        self.view_rect = Some(view);
        painter.rect_filled(view, 0.0, Color32::from_gray(24));
        let Some(size) = self.image_size() else {
            self.shown_zoom = None;
            painter.text(
                view.center(),
                egui::Align2::CENTER_CENTER,
                empty_hint,
                egui::FontId::proportional(16.0),
                Color32::GRAY,
            );
            return;
        };
        let fit = (view.width() / size.x).min(view.height() / size.y);
        let mut zoom = self.zoom.unwrap_or(fit);
        // Zoom around the pointer.
        if response.hovered() {
            let (scroll, pinch) = ui.input(|i| (i.smooth_scroll_delta.y, i.zoom_delta()));
            let factor = (scroll / 200.0).exp() * pinch;
            if (factor - 1.0).abs() > 1e-4 {
                let new_zoom = (zoom * factor).clamp(0.02, 64.0);
                if let Some(pointer) = response.hover_pos() {
                    let center = view.center() + self.pan;
                    let rel = (pointer - center) / zoom;
                    self.pan = pointer - view.center() - rel * new_zoom;
                }
                zoom = new_zoom;
                self.zoom = Some(zoom);
            }
        }
        let typing = ui.ctx().egui_wants_keyboard_input();
        ui.input_mut(|i| {
            if typing {
                return;
            }
            if i.consume_shortcut(&ZOOM_IN) || i.consume_shortcut(&ZOOM_IN_EQ) {
                self.zoom = Some((zoom * 1.25).min(64.0));
            }
            if i.consume_shortcut(&ZOOM_OUT) {
                self.zoom = Some((zoom / 1.25).max(0.02));
            }
            if i.consume_shortcut(&ZOOM_FIT) {
                self.zoom = None;
                self.pan = Vec2::ZERO;
            }
            if i.consume_shortcut(&ZOOM_ONE) {
                self.zoom = Some(1.0);
            }
        });
        let zoom = self.zoom.unwrap_or(fit);
        self.shown_zoom = Some(zoom);
        let rect = egui::Rect::from_center_size(view.center() + self.pan, size * zoom);
        self.image_rect = Some(rect);
        let to_image = |p: egui::Pos2| ((p.x - rect.min.x) / zoom, (p.y - rect.min.y) / zoom);

        self.handle_gestures(ui, &response, tools, to_image);

        let painter = painter.with_clip_rect(view);
        let ppp = ui.ctx().pixels_per_point();
        let hover = response.hover_pos().filter(|_| tools.tool == Tool::Brush);
        // Holding C while a result is staged shows the picture under it; otherwise the previous version.
        let before_staged = self.comparing && self.staged.is_some();
        if self.comparing
            && !before_staged
            && let Some(before) = self.previous_texture(ui.ctx())
        {
            let uv = egui::Rect::from_min_max(egui::pos2(0.0, 0.0), egui::pos2(1.0, 1.0));
            painter.image(before.id(), rect, uv, Color32::WHITE);
            painter.text(
                view.left_top() + Vec2::new(8.0, 8.0),
                egui::Align2::LEFT_TOP,
                tr("previous version"),
                egui::FontId::proportional(14.0),
                Color32::WHITE,
            );
        } else if gpu {
            let [r, g, b] = tools.mask_color;
            let uniforms = CanvasUniforms {
                image_origin: [(rect.min.x - view.min.x) * ppp, (rect.min.y - view.min.y) * ppp],
                image_extent: [rect.width() * ppp, rect.height() * ppp],
                viewport_origin: [(view.min.x * ppp).round(), (view.min.y * ppp).round()],
                cursor: hover.map_or([0.0; 2], |p| [(p.x - view.min.x) * ppp, (p.y - view.min.y) * ppp]),
                mask_color: [
                    f32::from(r) / 255.0,
                    f32::from(g) / 255.0,
                    f32::from(b) / 255.0,
                    tools.mask_opacity,
                ],
                cursor_radius: if hover.is_some() {
                    tools.brush.size * 0.5 * zoom * ppp
                } else {
                    0.0
                },
                cursor_hard_radius: tools.brush.size * 0.5 * tools.brush.hardness * zoom * ppp,
                checker: 8.0 * ppp,
                show_mask: tools.show_mask,
                nearest: zoom >= 2.0,
            };
            painter.add(eframe::egui_wgpu::Callback::new_paint_callback(
                view,
                CanvasCallback {
                    uniforms,
                    upload: self.pending.clone(),
                },
            ));
        } else {
            let uv = egui::Rect::from_min_max(egui::pos2(0.0, 0.0), egui::pos2(1.0, 1.0));
            if let Some(t) = &self.image_tex {
                painter.image(t.id(), rect, uv, Color32::WHITE);
            }
            if tools.show_mask
                && let Some(t) = &self.mask_tex
            {
                let alpha = (tools.mask_opacity * 255.0) as u8;
                painter.image(t.id(), rect, uv, Color32::from_white_alpha(alpha));
            }
            if let Some(p) = hover {
                let stroke = egui::Stroke::new(1.0, Color32::WHITE);
                painter.circle_stroke(p, tools.brush.size * 0.5 * zoom, stroke);
            }
        }
        if before_staged {
            painter.text(
                view.left_top() + Vec2::new(8.0, 8.0),
                egui::Align2::LEFT_TOP,
                tr("the picture without the result"),
                egui::FontId::proportional(14.0),
                Color32::WHITE,
            );
        } else {
            self.staged_ui(ui.ctx(), &painter, rect, tools);
        }
        self.preview_ui(ui.ctx(), &painter, rect, zoom, tools);
        // Overlays in points: the "only masked" box and gestures in progress.
        if let Some(region) = self.context_box {
            let to_screen = |x: u32, y: u32| rect.min + Vec2::new(x as f32, y as f32) * zoom;
            let r =
                egui::Rect::from_min_max(to_screen(region.x0, region.y0), to_screen(region.x1, region.y1));
            painter.rect_stroke(
                r,
                0.0,
                egui::Stroke::new(1.5, Color32::from_rgb(90, 200, 255)),
                egui::StrokeKind::Outside,
            );
            painter.text(
                r.left_top() + Vec2::new(2.0, -2.0),
                egui::Align2::LEFT_BOTTOM,
                tr("what the model sees"),
                egui::FontId::proportional(11.0),
                Color32::from_rgb(90, 200, 255),
            );
        }
        match &self.gesture {
            Some(Gesture::Rect(start)) => {
                if let Some(p) = response.interact_pointer_pos() {
                    painter.rect_stroke(
                        egui::Rect::from_two_pos(*start, p),
                        0.0,
                        egui::Stroke::new(1.0, Color32::WHITE),
                        egui::StrokeKind::Middle,
                    );
                }
            }
            Some(Gesture::Lasso(points)) => {
                painter.add(egui::Shape::line(
                    points.clone(),
                    egui::Stroke::new(1.0, Color32::WHITE),
                ));
            }
            _ => {}
        }
    }

    /// The staged result over the picture (fitted into it, keeping its own proportions when it
    /// has another size), with the mask's outline over it.
    fn staged_ui(
        &mut self,
        ctx: &egui::Context,
        painter: &egui::Painter,
        rect: egui::Rect,
        tools: &ToolSettings,
    ) {
        let Some((texture, _)) = &self.staged else {
            return;
        };
        let fits = self
            .doc
            .as_ref()
            .is_some_and(|d| d.size() == (texture.size()[0] as u32, texture.size()[1] as u32));
        let uv = egui::Rect::from_min_max(egui::pos2(0.0, 0.0), egui::pos2(1.0, 1.0));
        if fits {
            painter.image(texture.id(), rect, uv, Color32::WHITE);
        } else {
            let [tw, th] = texture.size().map(|v| v as f32);
            let scale = (rect.width() / tw).min(rect.height() / th);
            let target = egui::Rect::from_center_size(rect.center(), Vec2::new(tw, th) * scale);
            painter.rect_filled(rect, 0.0, Color32::from_gray(24));
            painter.image(texture.id(), target, uv, Color32::WHITE);
            return;
        }
        if !tools.show_mask {
            return;
        }
        let [r, g, b] = tools.mask_color;
        if let Some(outline) = self.outline_texture(ctx, Color32::from_rgb(r, g, b)) {
            painter.image(outline.id(), rect, uv, Color32::WHITE);
        }
    }

    /// The live preview over the part of the picture its job generates (the picture shows
    /// around it), with the mask's outline over it so the painted area stays visible.
    fn preview_ui(
        &mut self,
        ctx: &egui::Context,
        painter: &egui::Painter,
        rect: egui::Rect,
        zoom: f32,
        tools: &ToolSettings,
    ) {
        let Some(p) = &self.preview else {
            return;
        };
        let target = match (p.region, &self.doc) {
            (PreviewRegion::Part(r), Some(_)) => {
                let to_screen = |x: u32, y: u32| rect.min + Vec2::new(x as f32, y as f32) * zoom;
                egui::Rect::from_min_max(to_screen(r.x0, r.y0), to_screen(r.x1, r.y1))
            }
            (PreviewRegion::Hidden, _) => return,
            _ => rect,
        };
        let uv = egui::Rect::from_min_max(egui::pos2(0.0, 0.0), egui::pos2(1.0, 1.0));
        // While a stroke is painted the preview fades, so the stroke shows through it at once
        // (the outline follows when the stroke ends).
        let stroking = self.doc.as_ref().is_some_and(Document::stroking);
        let tint = if stroking {
            Color32::from_white_alpha(80)
        } else {
            Color32::WHITE
        };
        painter.image(p.texture.id(), target, uv, tint);
        if !tools.show_mask {
            return;
        }
        let [r, g, b] = tools.mask_color;
        if let Some(outline) = self.outline_texture(ctx, Color32::from_rgb(r, g, b)) {
            painter.image(outline.id(), rect, uv, Color32::WHITE);
        }
    }

    fn previous_texture(&mut self, ctx: &egui::Context) -> Option<TextureHandle> {
        let doc = self.doc.as_ref()?;
        let revision = doc.revision();
        if let Some((t, r)) = &self.compare_tex
            && *r == revision
        {
            return Some(t.clone());
        }
        let before = doc.previous_image()?;
        let (w, h) = before.dimensions();
        let rgba = document::rgba_region(before, whole(w, h));
        let image = ColorImage::from_rgba_unmultiplied([w as usize, h as usize], &rgba);
        let tex = ctx.load_texture("compare", image, TextureOptions::LINEAR);
        self.compare_tex = Some((tex.clone(), revision));
        Some(tex)
    }

    fn handle_gestures(
        &mut self,
        ui: &egui::Ui,
        response: &egui::Response,
        tools: &ToolSettings,
        to_image: impl Fn(egui::Pos2) -> (f32, f32),
    ) {
        let (space, middle, primary) = ui.input(|i| {
            (
                i.key_down(Key::Space),
                i.pointer.middle_down(),
                i.pointer.primary_down(),
            )
        });
        // Mask edits go on while a job runs: they apply to the next job (the running one has
        // its own copy of the mask).
        let editable = self.doc.is_some();
        if response.drag_started() {
            self.gesture = Some(if space || middle || !editable || !primary {
                Gesture::Pan
            } else {
                let p = response.interact_pointer_pos().unwrap_or_default();
                match tools.tool {
                    Tool::Brush => {
                        let (x, y) = to_image(p);
                        if let Some(doc) = &mut self.doc {
                            doc.begin_stroke(tools.brush, x, y);
                        }
                        Gesture::Stroke
                    }
                    Tool::Rect => Gesture::Rect(p),
                    Tool::Lasso => Gesture::Lasso(vec![p]),
                }
            });
        }
        if response.dragged() {
            let p = response.interact_pointer_pos();
            match &mut self.gesture {
                Some(Gesture::Pan) => self.pan += response.drag_delta(),
                Some(Gesture::Stroke) => {
                    if let (Some(doc), Some(p)) = (&mut self.doc, p) {
                        let (x, y) = to_image(p);
                        doc.stroke_to(x, y);
                    }
                }
                Some(Gesture::Lasso(points)) => {
                    if let Some(p) = p
                        && points.last().is_none_or(|l| l.distance(p) > 2.0)
                    {
                        points.push(p);
                    }
                }
                Some(Gesture::Rect(_)) | None => {}
            }
        }
        if response.drag_stopped() {
            let end = response.interact_pointer_pos();
            match self.gesture.take() {
                Some(Gesture::Stroke) => {
                    if let Some(doc) = &mut self.doc {
                        doc.end_stroke();
                    }
                }
                Some(Gesture::Rect(start)) => {
                    if let (Some(doc), Some(end)) = (&mut self.doc, end) {
                        doc.fill_rect(to_image(start), to_image(end), tools.brush.erase);
                    }
                }
                Some(Gesture::Lasso(points)) => {
                    if let Some(doc) = &mut self.doc {
                        let pts: Vec<(f32, f32)> = points.into_iter().map(&to_image).collect();
                        doc.fill_polygon(&pts, tools.brush.erase);
                    }
                }
                Some(Gesture::Pan) | None => {}
            }
        }
        // A click without a drag paints one dab.
        if response.clicked()
            && editable
            && tools.tool == Tool::Brush
            && !space
            && let (Some(doc), Some(p)) = (&mut self.doc, response.interact_pointer_pos())
        {
            let (x, y) = to_image(p);
            doc.begin_stroke(tools.brush, x, y);
            doc.end_stroke();
        }
    }
}

/// A tool bar button that edits the document: label, hover text, enabled, the edit.
type DocumentButton = (&'static str, Option<&'static str>, bool, fn(&mut Document));

/// The whole of a `w` × `h` picture.
fn whole(w: u32, h: u32) -> PixelRect {
    PixelRect {
        x0: 0,
        y0: 0,
        x1: w,
        y1: h,
    }
}

/// The tool bar above the canvas, on one row that never wraps (narrower windows scroll it):
/// tools, erase, brush size, the brush and overlay options menu, mask edits, undo/redo and
/// the mask toggle. Number fields have a fixed width, so a growing value moves nothing.
pub fn toolbar_ui(ui: &mut egui::Ui, view: &mut CanvasView, tools: &mut ToolSettings) {
    egui::ScrollArea::horizontal()
        .id_salt("canvas-toolbar")
        .scroll_bar_visibility(egui::scroll_area::ScrollBarVisibility::AlwaysHidden)
        .show(ui, |ui| {
            ui.horizontal(|ui| {
                ui.spacing_mut().item_spacing.x = 4.0;
                tool_buttons_ui(ui, tools);
                toolbar_separator(ui);
                labelled_drag_ui(ui, tr("Size"), &mut tools.brush.size, 1.0..=MAX_BRUSH_PX, 1.0, 0)
                    .on_hover_text(tr("brush diameter in pixels; [ and ] step it by 10 %"));
                tools.brush.size = tools.brush.size.round().clamp(1.0, MAX_BRUSH_PX);
                ui.menu_button(tr("Options"), |ui| options_ui(ui, tools))
                    .response
                    .on_hover_text(tr("brush hardness and opacity, mask colour and overlay opacity"));
                toolbar_separator(ui);
                document_buttons_ui(ui, view);
                toolbar_separator(ui);
                ui.toggle_value(&mut tools.show_mask, tr("Mask"))
                    .on_hover_text(tr("show or hide the mask (H)"));
            });
        });
}

/// A narrow separator between groups of the tool bar.
fn toolbar_separator(ui: &mut egui::Ui) {
    ui.add(egui::Separator::default().spacing(6.0));
}

/// The tool and paint/erase buttons.
fn tool_buttons_ui(ui: &mut egui::Ui, tools: &mut ToolSettings) {
    ui.selectable_value(&mut tools.tool, Tool::Brush, tr("Brush"))
        .on_hover_text("B");
    ui.selectable_value(&mut tools.tool, Tool::Rect, tr("Rectangle"))
        .on_hover_text("M");
    ui.selectable_value(&mut tools.tool, Tool::Lasso, tr("Lasso"))
        .on_hover_text("L");
    toolbar_separator(ui);
    ui.toggle_value(&mut tools.brush.erase, tr("Erase"))
        .on_hover_text(tr("erase the mask instead of painting it (X)"));
}

/// The Options menu: brush hardness and opacity, mask overlay colour and opacity.
fn options_ui(ui: &mut egui::Ui, tools: &mut ToolSettings) {
    egui::Grid::new("canvas-options").num_columns(2).show(ui, |ui| {
        labelled_drag_ui(ui, tr("Hardness"), &mut tools.brush.hardness, 0.0..=1.0, 0.01, 2);
        ui.end_row();
        labelled_drag_ui(ui, tr("Opacity"), &mut tools.brush.opacity, 0.0..=1.0, 0.01, 2);
        ui.end_row();
        ui.label(tr("Mask colour"));
        let mut color = Color32::from_rgb(tools.mask_color[0], tools.mask_color[1], tools.mask_color[2]);
        if ui.color_edit_button_srgba(&mut color).changed() {
            tools.mask_color = [color.r(), color.g(), color.b()];
        }
        ui.end_row();
        labelled_drag_ui(ui, tr("Overlay"), &mut tools.mask_opacity, 0.0..=1.0, 0.01, 2);
        ui.end_row();
    });
}

/// Fill, Clear, Invert, Undo and Redo (disabled without a picture).
fn document_buttons_ui(ui: &mut egui::Ui, view: &mut CanvasView) {
    let has_doc = view.doc.is_some();
    ui.add_enabled_ui(has_doc, |ui| {
        let (can_undo, can_redo) = view
            .doc
            .as_ref()
            .map_or((false, false), |d| (d.can_undo(), d.can_redo()));
        let edits: [DocumentButton; 5] = [
            (tr("Fill"), Some(tr("mask everything")), true, Document::fill_mask),
            (
                tr("Clear"),
                Some(tr("remove the mask")),
                true,
                Document::clear_mask,
            ),
            (tr("Invert"), None, true, Document::invert_mask),
            (tr("Undo"), Some("Ctrl+Z"), can_undo, |d| _ = d.undo()),
            (tr("Redo"), Some("Ctrl+Shift+Z"), can_redo, |d| _ = d.redo()),
        ];
        for (label, hint, enabled, edit) in edits {
            let mut response = ui.add_enabled(enabled, egui::Button::new(label));
            if let Some(hint) = hint {
                response = response.on_hover_text(hint);
            }
            if response.clicked()
                && let Some(d) = &mut view.doc
            {
                edit(d);
            }
        }
    });
}

/// A label and a fixed-width drag value with `decimals` decimals, labelled by it.
fn labelled_drag_ui(
    ui: &mut egui::Ui,
    label: &str,
    value: &mut f32,
    range: std::ops::RangeInclusive<f32>,
    speed: f64,
    decimals: usize,
) -> egui::Response {
    let label = ui.label(label);
    let field = egui::DragValue::new(value)
        .range(range)
        .speed(speed)
        .fixed_decimals(decimals);
    ui.add_sized([FIELD_WIDTH_PT, ui.spacing().interact_size.y], field)
        .labelled_by(label.id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brush_steps_are_whole_pixels_of_about_ten_percent() {
        assert_eq!(brush_step(100.0, true), 110.0);
        assert_eq!(brush_step(100.0, false), 91.0);
        // Small brushes still change by a pixel; the ends hold.
        assert_eq!(brush_step(3.0, true), 4.0);
        assert_eq!(brush_step(3.0, false), 2.0);
        assert_eq!(brush_step(1.0, false), 1.0);
        assert_eq!(brush_step(2048.0, true), 2048.0);
        // An odd stored size (older settings) snaps to whole pixels.
        assert_eq!(brush_step(82.94, true), 91.0);
        let mut size = 40.0;
        for _ in 0..30 {
            size = brush_step(size, true);
            assert_eq!(size.fract(), 0.0);
        }
    }

    #[test]
    fn the_mask_outline_marks_only_the_edge() {
        let mut mask = image::GrayImage::new(12, 12);
        for y in 2..10 {
            for x in 2..10 {
                mask.put_pixel(x, y, image::Luma([255]));
            }
        }
        let outline = mask_outline(&mask, Color32::RED);
        let at = |x: usize, y: usize| outline.pixels[y * 12 + x];
        assert_eq!(at(2, 2), Color32::RED);
        assert_eq!(at(9, 5), Color32::RED);
        assert_eq!(at(5, 5), Color32::TRANSPARENT, "the inside stays clear");
        assert_eq!(at(0, 0), Color32::TRANSPARENT, "the outside stays clear");
    }
}
