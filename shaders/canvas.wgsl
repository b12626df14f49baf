// Easel's canvas: the picture over a checkerboard, the inpainting mask as a tinted overlay, and the
// brush cursor ring. Drawn as one full-viewport triangle inside egui's render pass; every pixel works
// out which image texel it shows from the uniforms, so zoom and pan cost nothing to change.

struct Canvas {
    // Top-left of the picture relative to the viewport, in physical pixels.
    image_origin: vec2<f32>,
    // Size of the picture on screen, in physical pixels.
    image_extent: vec2<f32>,
    // Viewport origin in framebuffer pixels (frag coords are framebuffer-relative).
    viewport_origin: vec2<f32>,
    // Brush centre relative to the viewport, in physical pixels.
    cursor: vec2<f32>,
    // Mask overlay colour (rgb) and opacity (a).
    mask_color: vec4<f32>,
    // Brush outer radius and hard-core radius in physical pixels (0 = no cursor).
    cursor_radius: f32,
    cursor_hard_radius: f32,
    // Checkerboard square size in physical pixels.
    checker: f32,
    // 1 = show the mask overlay.
    show_mask: f32,
    // 1 = sample nearest texels (zoomed in), 0 = bilinear.
    nearest: f32,
    _pad0: f32,
    _pad1: f32,
    _pad2: f32,
};

@group(0) @binding(0) var<uniform> canvas: Canvas;
@group(0) @binding(1) var image_tex: texture_2d<f32>;
@group(0) @binding(2) var mask_tex: texture_2d<f32>;
@group(0) @binding(3) var linear_sampler: sampler;

struct VsOut {
    @builtin(position) position: vec4<f32>,
};

@vertex
fn vs_main(@builtin(vertex_index) index: u32) -> VsOut {
    // One triangle that covers the viewport.
    let uv = vec2<f32>(f32((index << 1u) & 2u), f32(index & 2u));
    var out: VsOut;
    out.position = vec4<f32>(uv * 2.0 - 1.0, 0.0, 1.0);
    return out;
}

fn sample_layer(tex: texture_2d<f32>, uv: vec2<f32>) -> vec4<f32> {
    if canvas.nearest > 0.5 {
        let size = vec2<f32>(textureDimensions(tex));
        let texel = clamp(vec2<i32>(floor(uv * size)), vec2<i32>(0), vec2<i32>(size) - 1);
        return textureLoad(tex, texel, 0);
    }
    return textureSampleLevel(tex, linear_sampler, uv, 0.0);
}

@fragment
fn fs_main(in: VsOut) -> @location(0) vec4<f32> {
    let p = in.position.xy - canvas.viewport_origin;
    let uv = (p - canvas.image_origin) / canvas.image_extent;
    var color = vec3<f32>(0.094, 0.094, 0.094);
    if all(uv >= vec2<f32>(0.0)) && all(uv < vec2<f32>(1.0)) {
        let cell = floor((p - canvas.image_origin) / canvas.checker);
        let odd = (i32(cell.x) + i32(cell.y)) & 1;
        let checker = select(vec3<f32>(0.8), vec3<f32>(0.6), odd == 1);
        let image = sample_layer(image_tex, uv);
        color = mix(checker, image.rgb, image.a);
        if canvas.show_mask > 0.5 {
            let m = sample_layer(mask_tex, uv).r;
            color = mix(color, canvas.mask_color.rgb, m * canvas.mask_color.a);
        }
    }
    if canvas.cursor_radius > 0.0 {
        let d = distance(p, canvas.cursor);
        // Outer ring: white with a dark halo so it reads on any picture.
        let ring = abs(d - canvas.cursor_radius);
        let halo = 1.0 - smoothstep(1.0, 2.5, ring);
        color = mix(color, vec3<f32>(0.0), halo * 0.6);
        let line = 1.0 - smoothstep(0.0, 1.0, ring);
        color = mix(color, vec3<f32>(1.0), line);
        // Hard core: a fainter dashed ring.
        if canvas.cursor_hard_radius > 1.0 && canvas.cursor_hard_radius < canvas.cursor_radius - 2.0 {
            let inner = abs(d - canvas.cursor_hard_radius);
            let angle = atan2(p.y - canvas.cursor.y, p.x - canvas.cursor.x);
            let dash = step(0.0, sin(angle * 12.0));
            color = mix(color, vec3<f32>(1.0), (1.0 - smoothstep(0.0, 1.0, inner)) * 0.6 * dash);
        }
    }
    return vec4<f32>(color, 1.0);
}
