//! The canvas on the GPU: an egui-wgpu paint callback running `shaders/canvas.wgsl`.
//!
//! The picture (RGBA8) and the mask (R8) live in two textures that are created once per document
//! size and then updated only where the document changed (the dirty rectangle), so painting on a
//! 4096×4096 canvas uploads a few kilobytes per frame, not 80 MB.

use eframe::egui;
use eframe::egui_wgpu::{self, CallbackResources, CallbackTrait, ScreenDescriptor};
use eframe::wgpu;

use crate::document::PixelRect;

const SHADER: &str = include_str!("../../shaders/canvas.wgsl");

/// Uniform block of `canvas.wgsl`: 12 floats of vectors, then 8 scalars (3 of them padding), 80
/// bytes, std140-compatible.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CanvasUniforms {
    /// Picture top-left relative to the viewport, physical px.
    pub image_origin: [f32; 2],
    /// Picture size on screen, physical px.
    pub image_extent: [f32; 2],
    /// Viewport origin in the framebuffer, physical px.
    pub viewport_origin: [f32; 2],
    /// Brush centre relative to the viewport, physical px.
    pub cursor: [f32; 2],
    /// Overlay colour and opacity.
    pub mask_color: [f32; 4],
    /// Brush radius, physical px (0 hides the cursor).
    pub cursor_radius: f32,
    /// Hard-core radius, physical px.
    pub cursor_hard_radius: f32,
    /// Checkerboard square, physical px.
    pub checker: f32,
    /// Show the mask overlay.
    pub show_mask: bool,
    /// Nearest-texel sampling.
    pub nearest: bool,
}

impl CanvasUniforms {
    fn bytes(&self) -> Vec<u8> {
        let mut f = Vec::with_capacity(20);
        f.extend_from_slice(&self.image_origin);
        f.extend_from_slice(&self.image_extent);
        f.extend_from_slice(&self.viewport_origin);
        f.extend_from_slice(&self.cursor);
        f.extend_from_slice(&self.mask_color);
        f.extend_from_slice(&[
            self.cursor_radius,
            self.cursor_hard_radius,
            self.checker,
            f32::from(u8::from(self.show_mask)),
            f32::from(u8::from(self.nearest)),
            0.0,
            0.0,
            0.0,
        ]);
        f.iter().flat_map(|v| v.to_le_bytes()).collect()
    }
}

/// Pixels to upload before drawing.
#[derive(Debug, Clone, Default)]
pub struct Upload {
    /// New texture size: recreate both textures (their whole contents follow in `image`/`mask`).
    pub resize: Option<(u32, u32)>,
    /// Picture region and its RGBA8 pixels.
    pub image: Option<(PixelRect, Vec<u8>)>,
    /// Mask region and its R8 pixels.
    pub mask: Option<(PixelRect, Vec<u8>)>,
}

/// GPU objects kept in egui-wgpu's callback resources.
pub struct CanvasResources {
    pipeline: wgpu::RenderPipeline,
    layout: wgpu::BindGroupLayout,
    sampler: wgpu::Sampler,
    uniforms: wgpu::Buffer,
    image_format: wgpu::TextureFormat,
    textures: Option<Textures>,
}

struct Textures {
    size: (u32, u32),
    image: wgpu::Texture,
    mask: wgpu::Texture,
    bind_group: wgpu::BindGroup,
}

impl CanvasResources {
    /// Registers the canvas pipeline with eframe's renderer. Call once when a wgpu render state exists.
    pub fn install(render_state: &egui_wgpu::RenderState) {
        let resources = Self::new(&render_state.device, render_state.target_format);
        render_state.renderer.write().callback_resources.insert(resources);
    }

    fn new(device: &wgpu::Device, target: wgpu::TextureFormat) -> Self {
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("easel_canvas"),
            source: wgpu::ShaderSource::Wgsl(SHADER.into()),
        });
        let texture_entry = |binding| wgpu::BindGroupLayoutEntry {
            binding,
            visibility: wgpu::ShaderStages::FRAGMENT,
            ty: wgpu::BindingType::Texture {
                multisampled: false,
                sample_type: wgpu::TextureSampleType::Float { filterable: true },
                view_dimension: wgpu::TextureViewDimension::D2,
            },
            count: None,
        };
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("easel_canvas_layout"),
            entries: &[
                wgpu::BindGroupLayoutEntry {
                    binding: 0,
                    visibility: wgpu::ShaderStages::FRAGMENT,
                    ty: wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Uniform,
                        has_dynamic_offset: false,
                        min_binding_size: None,
                    },
                    count: None,
                },
                texture_entry(1),
                texture_entry(2),
                wgpu::BindGroupLayoutEntry {
                    binding: 3,
                    visibility: wgpu::ShaderStages::FRAGMENT,
                    ty: wgpu::BindingType::Sampler(wgpu::SamplerBindingType::Filtering),
                    count: None,
                },
            ],
        });
        let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("easel_canvas_pipeline_layout"),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let pipeline = device.create_render_pipeline(&wgpu::RenderPipelineDescriptor {
            label: Some("easel_canvas_pipeline"),
            layout: Some(&pipeline_layout),
            vertex: wgpu::VertexState {
                module: &module,
                entry_point: Some("vs_main"),
                buffers: &[],
                compilation_options: wgpu::PipelineCompilationOptions::default(),
            },
            primitive: wgpu::PrimitiveState::default(),
            depth_stencil: None,
            multisample: wgpu::MultisampleState::default(),
            fragment: Some(wgpu::FragmentState {
                module: &module,
                entry_point: Some("fs_main"),
                targets: &[Some(wgpu::ColorTargetState {
                    format: target,
                    blend: None,
                    write_mask: wgpu::ColorWrites::ALL,
                })],
                compilation_options: wgpu::PipelineCompilationOptions::default(),
            }),
            multiview_mask: None,
            cache: None,
        });
        let sampler = device.create_sampler(&wgpu::SamplerDescriptor {
            label: Some("easel_canvas_sampler"),
            mag_filter: wgpu::FilterMode::Linear,
            min_filter: wgpu::FilterMode::Linear,
            ..wgpu::SamplerDescriptor::default()
        });
        let uniforms = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("easel_canvas_uniforms"),
            size: 96,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        // Colours are stored as sRGB bytes; on an sRGB framebuffer let the hardware decode them so
        // the shader's mix happens on the values the framebuffer re-encodes.
        let image_format = if target.is_srgb() {
            wgpu::TextureFormat::Rgba8UnormSrgb
        } else {
            wgpu::TextureFormat::Rgba8Unorm
        };
        Self {
            pipeline,
            layout,
            sampler,
            uniforms,
            image_format,
            textures: None,
        }
    }

    fn create_textures(&mut self, device: &wgpu::Device, (w, h): (u32, u32)) {
        let texture = |label, format| {
            device.create_texture(&wgpu::TextureDescriptor {
                label: Some(label),
                size: wgpu::Extent3d {
                    width: w.max(1),
                    height: h.max(1),
                    depth_or_array_layers: 1,
                },
                mip_level_count: 1,
                sample_count: 1,
                dimension: wgpu::TextureDimension::D2,
                format,
                usage: wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_DST,
                view_formats: &[],
            })
        };
        let image = texture("easel_canvas_image", self.image_format);
        let mask = texture("easel_canvas_mask", wgpu::TextureFormat::R8Unorm);
        let image_view = image.create_view(&wgpu::TextureViewDescriptor::default());
        let mask_view = mask.create_view(&wgpu::TextureViewDescriptor::default());
        let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("easel_canvas_bind_group"),
            layout: &self.layout,
            entries: &[
                wgpu::BindGroupEntry {
                    binding: 0,
                    resource: self.uniforms.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 1,
                    resource: wgpu::BindingResource::TextureView(&image_view),
                },
                wgpu::BindGroupEntry {
                    binding: 2,
                    resource: wgpu::BindingResource::TextureView(&mask_view),
                },
                wgpu::BindGroupEntry {
                    binding: 3,
                    resource: wgpu::BindingResource::Sampler(&self.sampler),
                },
            ],
        });
        self.textures = Some(Textures {
            size: (w, h),
            image,
            mask,
            bind_group,
        });
    }
}

fn write_region(
    queue: &wgpu::Queue,
    texture: &wgpu::Texture,
    rect: PixelRect,
    bytes_per_pixel: u32,
    data: &[u8],
) {
    if rect.width() == 0 || rect.height() == 0 {
        return;
    }
    queue.write_texture(
        wgpu::TexelCopyTextureInfo {
            texture,
            mip_level: 0,
            origin: wgpu::Origin3d {
                x: rect.x0,
                y: rect.y0,
                z: 0,
            },
            aspect: wgpu::TextureAspect::All,
        },
        data,
        wgpu::TexelCopyBufferLayout {
            offset: 0,
            bytes_per_row: Some(rect.width() * bytes_per_pixel),
            rows_per_image: Some(rect.height()),
        },
        wgpu::Extent3d {
            width: rect.width(),
            height: rect.height(),
            depth_or_array_layers: 1,
        },
    );
}

/// One frame's draw of the canvas.
pub struct CanvasCallback {
    /// Where and how to draw.
    pub uniforms: CanvasUniforms,
    /// Pixels to upload first. Shared with the canvas view and taken by the first paint that really
    /// happens: egui may discard a pass (and its callbacks) before painting, so the data must
    /// survive a callback that never runs.
    pub upload: std::sync::Arc<std::sync::Mutex<Option<Upload>>>,
}

impl CallbackTrait for CanvasCallback {
    fn prepare(
        &self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        _screen: &ScreenDescriptor,
        _encoder: &mut wgpu::CommandEncoder,
        resources: &mut CallbackResources,
    ) -> Vec<wgpu::CommandBuffer> {
        let Some(res) = resources.get_mut::<CanvasResources>() else {
            return Vec::new();
        };
        let upload = self.upload.lock().ok().and_then(|mut u| u.take());
        if let Some(upload) = upload {
            if let Some(size) = upload.resize
                && res.textures.as_ref().is_none_or(|t| t.size != size)
            {
                res.create_textures(device, size);
            }
            if let Some(t) = &res.textures {
                if let Some((rect, data)) = &upload.image {
                    write_region(queue, &t.image, *rect, 4, data);
                }
                if let Some((rect, data)) = &upload.mask {
                    write_region(queue, &t.mask, *rect, 1, data);
                }
            }
        }
        queue.write_buffer(&res.uniforms, 0, &self.uniforms.bytes());
        Vec::new()
    }

    fn paint(
        &self,
        _info: egui::PaintCallbackInfo,
        render_pass: &mut wgpu::RenderPass<'static>,
        resources: &CallbackResources,
    ) {
        let Some(res) = resources.get::<CanvasResources>() else {
            return;
        };
        let Some(t) = &res.textures else {
            return;
        };
        render_pass.set_pipeline(&res.pipeline);
        render_pass.set_bind_group(0, &t.bind_group, &[]);
        render_pass.draw(0..3, 0..1);
    }
}
