//! The model browser's view of the disk: which checkpoints live in which folders, recognising
//! A1111 (`models/Stable-diffusion`) and ComfyUI (`models/checkpoints`) layouts. Header reads only; runs off the UI thread.

use std::path::{Path, PathBuf};

use super::family::{self, Family};

/// One checkpoint found on disk.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelEntry {
    /// The file or diffusers folder.
    pub path: PathBuf,
    /// Display name (file stem or folder name).
    pub name: String,
    /// Family from the header, when it could be read.
    pub family: Option<Family>,
    /// Bytes on disk.
    pub size_bytes: u64,
    /// `<name>.preview.png` or `<name>.png` beside the file, A1111 style.
    pub thumbnail: Option<PathBuf>,
    /// Why the file cannot be used, when it cannot.
    pub problem: Option<String>,
}

/// Where checkpoints live below a folder the user added: the A1111 / ComfyUI subfolders when the
/// folder is a WebUI or ComfyUI root, otherwise the folder itself.
pub fn checkpoint_dirs(root: &Path) -> Vec<PathBuf> {
    let known = [
        "models/Stable-diffusion",
        "models/checkpoints",
        "Stable-diffusion",
        "checkpoints",
    ];
    let found: Vec<PathBuf> = known
        .iter()
        .map(|k| root.join(k))
        .filter(|p| p.is_dir())
        .collect();
    if found.is_empty() {
        vec![root.to_path_buf()]
    } else {
        found
    }
}

/// Where LoRAs live below a folder the user added: A1111's `models/Lora` (and `models/LyCORIS`),
/// ComfyUI's `models/loras`; none when the folder is neither.
pub fn lora_dirs(root: &Path) -> Vec<PathBuf> {
    ["models/Lora", "models/LyCORIS", "models/loras", "Lora", "loras"]
        .iter()
        .map(|k| root.join(k))
        .filter(|p| p.is_dir())
        .collect()
}

/// Where ControlNets live below a folder the user added: A1111's `models/ControlNet` (and the
/// extension's own `extensions/sd-webui-controlnet/models`), ComfyUI's `models/controlnet`.
pub fn controlnet_dirs(root: &Path) -> Vec<PathBuf> {
    let mut seen: Vec<PathBuf> = Vec::new();
    for k in [
        "models/ControlNet",
        "models/controlnet",
        "extensions/sd-webui-controlnet/models",
        "ControlNet",
        "controlnet",
    ] {
        let p = root.join(k);
        // Case-insensitive file systems list the same folder twice.
        let canonical = p.canonicalize().unwrap_or_else(|_| p.clone());
        if p.is_dir()
            && !seen
                .iter()
                .any(|s| s.canonicalize().unwrap_or_else(|_| s.clone()) == canonical)
        {
            seen.push(p);
        }
    }
    seen
}

/// One ControlNet for the ControlNet section.
#[derive(Debug, Clone, PartialEq)]
pub struct ControlNetEntry {
    /// File stem or folder name.
    pub name: String,
    /// The file or diffusers folder.
    pub path: PathBuf,
    /// Bytes on disk.
    pub size_bytes: u64,
    /// `name [hash]`, as sd-webui-controlnet lists it.
    pub label: String,
    /// What it is ("SD 1.x ControlNet, 3 hint channels"), or why Easel cannot run it.
    pub family: Result<String, String>,
}

/// Every ControlNet file (`.safetensors`) and diffusers ControlNet folder directly in `folders`,
/// sorted by name. Headers only.
pub fn scan_controlnets(folders: &[PathBuf]) -> Vec<ControlNetEntry> {
    let mut out: Vec<ControlNetEntry> = Vec::new();
    for dir in folders {
        let Ok(read) = std::fs::read_dir(dir) else {
            continue;
        };
        let mut paths: Vec<PathBuf> = read.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for path in paths {
            let is_folder = path.is_dir() && path.join("config.json").is_file();
            let is_file = path.is_file()
                && path
                    .extension()
                    .is_some_and(|e| e.eq_ignore_ascii_case("safetensors") || e.eq_ignore_ascii_case("pth"));
            if !(is_folder || is_file) || out.iter().any(|e| e.path == path) {
                continue;
            }
            let name = if is_folder {
                path.file_name()
            } else {
                path.file_stem()
            }
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
            let family = super::controlnet::ControlNetFile::open(&path)
                .map(|f| format!("SD 1.x ControlNet, {} hint channels", f.geometry.hint_channels))
                .map_err(|e| e.to_string());
            let size_bytes = if is_folder {
                std::fs::read_dir(&path).map_or(0, |r| {
                    r.filter_map(|e| e.ok()?.metadata().ok()).map(|m| m.len()).sum()
                })
            } else {
                std::fs::metadata(&path).map_or(0, |m| m.len())
            };
            out.push(ControlNetEntry {
                label: super::controlnet::list_label(&path),
                name,
                path,
                size_bytes,
                family,
            });
        }
    }
    out.sort_by_key(|e| (e.name.to_lowercase(), e.path.clone()));
    out
}

/// One LoRA file for the browser.
#[derive(Debug, Clone)]
pub struct LoraEntry {
    /// Name used in `<lora:name:w>`.
    pub name: String,
    /// The file.
    pub path: PathBuf,
    /// Bytes on disk.
    pub size_bytes: u64,
    /// `<name>.preview.png` / `<name>.png` beside it.
    pub thumbnail: Option<PathBuf>,
    /// Model family it was made for, from its tensor names; `None` if unreadable.
    pub family: Option<&'static str>,
}

/// How a LoRA fits the selected checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoraFit {
    /// Made for the checkpoint's family.
    Fits,
    /// Cannot tell: the LoRA's header could not be read, or the checkpoint's family is unknown.
    Unknown,
    /// Made for another family: merging it into this checkpoint does nothing useful.
    Mismatch {
        /// What the LoRA is for ("SDXL").
        lora: &'static str,
        /// What the checkpoint is ("SD 1.x").
        model: &'static str,
    },
}

/// The LoRA family label (as [`super::lora_file::family_label`] writes it) that fits checkpoints
/// of `family`; `None` where no LoRA label names it.
fn lora_label_for(family: Family) -> Option<&'static str> {
    match family {
        Family::Sd1 | Family::Sd1Inpaint | Family::Sd1Other => Some("SD 1.x"),
        Family::Sdxl | Family::SdxlRefiner => Some("SDXL"),
        Family::Sd3 | Family::Flux => Some("SD 3 / Flux"),
        _ => None,
    }
}

impl LoraEntry {
    /// How this LoRA fits a checkpoint of family `checkpoint` (`None`: no checkpoint, or one
    /// whose header could not be read).
    pub fn fit(&self, checkpoint: Option<Family>) -> LoraFit {
        let Some(model) = checkpoint else {
            return LoraFit::Unknown;
        };
        match (self.family, lora_label_for(model)) {
            (Some(lora), Some(wanted)) if lora == wanted => LoraFit::Fits,
            (Some(lora), Some(_)) => LoraFit::Mismatch {
                lora,
                model: model.label(),
            },
            _ => LoraFit::Unknown,
        }
    }
}

/// Every LoRA under `folders`.
pub fn scan_loras(folders: &[PathBuf]) -> Vec<LoraEntry> {
    super::lora_file::list(folders)
        .into_iter()
        .map(|(name, path)| LoraEntry {
            size_bytes: std::fs::metadata(&path).map_or(0, |m| m.len()),
            thumbnail: thumbnail_for(&path),
            family: super::lora_file::family_label(&path),
            name,
            path,
        })
        .collect()
}

fn thumbnail_for(path: &Path) -> Option<PathBuf> {
    let stem = path.file_stem()?.to_string_lossy().into_owned();
    let dir = path.parent()?;
    [format!("{stem}.preview.png"), format!("{stem}.png")]
        .into_iter()
        .map(|n| dir.join(n))
        .find(|p| p.is_file())
}

fn entry_for(path: &Path) -> Option<ModelEntry> {
    let is_diffusers = path.is_dir() && path.join("model_index.json").is_file();
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let is_file_model = path.is_file() && matches!(ext.as_deref(), Some("safetensors" | "ckpt"));
    if !is_diffusers && !is_file_model {
        return None;
    }
    let name = if is_diffusers {
        path.file_name()?.to_string_lossy().into_owned()
    } else {
        path.file_stem()?.to_string_lossy().into_owned()
    };
    let (family, size_bytes, problem) = match family::inspect(path) {
        Ok(info) => (
            Some(info.family),
            info.file_size,
            info.family.unsupported_reason(),
        ),
        Err(err) => (
            None,
            std::fs::metadata(path).map_or(0, |m| m.len()),
            Some(err.to_string()),
        ),
    };
    Some(ModelEntry {
        path: path.to_path_buf(),
        name,
        family,
        size_bytes,
        thumbnail: thumbnail_for(path),
        problem,
    })
}

/// Lists the checkpoints under `roots` (two folder levels deep), sorted by name.
/// LoRA and VAE files found among them are left out.
pub fn scan(roots: &[PathBuf]) -> Vec<ModelEntry> {
    let mut out = Vec::new();
    for root in roots {
        for dir in checkpoint_dirs(root) {
            scan_dir(&dir, &mut out, 0);
        }
    }
    out.sort_by_key(|e| (e.name.to_lowercase(), e.path.clone()));
    out.dedup_by(|a, b| a.path == b.path);
    out
}

fn scan_dir(dir: &Path, out: &mut Vec<ModelEntry>, depth: usize) {
    let Ok(read) = std::fs::read_dir(dir) else { return };
    let mut paths: Vec<PathBuf> = read.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for p in paths {
        if let Some(entry) = entry_for(&p) {
            if !matches!(entry.family, Some(Family::Lora | Family::Vae)) {
                out.push(entry);
            }
        } else if p.is_dir() && depth < 2 {
            scan_dir(&p, out, depth + 1);
        }
    }
}

/// File names looked for in a `vae-approx` folder, most specific first: the standalone decoder
/// madebyollin publishes, a diffusers `AutoencoderTiny` folder, or its weights as one file.
const TAESD_DECODER_NAMES: [&str; 4] = [
    "taesd_decoder.safetensors",
    "taesd/diffusion_pytorch_model.safetensors",
    "taesd/diffusion_pytorch_model.fp16.safetensors",
    "taesd.safetensors",
];

/// The same for the encoder.
const TAESD_ENCODER_NAMES: [&str; 4] = [
    "taesd_encoder.safetensors",
    "taesd/diffusion_pytorch_model.safetensors",
    "taesd/diffusion_pytorch_model.fp16.safetensors",
    "taesd.safetensors",
];

/// Pickled files A1111 downloads into `models/VAE-taesd`; named in the "not found" message, never read.
/// The first TAESD decoder file in `dirs` (see [`TAESD_DECODER_NAMES`]).
pub fn find_taesd_decoder(dirs: &[PathBuf]) -> Option<PathBuf> {
    find_taesd_in(dirs, &TAESD_DECODER_NAMES)
}

/// The first TAESD encoder file in `dirs`.
pub fn find_taesd_encoder(dirs: &[PathBuf]) -> Option<PathBuf> {
    find_taesd_in(dirs, &TAESD_ENCODER_NAMES)
}

fn find_taesd_in(dirs: &[PathBuf], names: &[&str]) -> Option<PathBuf> {
    dirs.iter()
        .flat_map(|d| names.iter().map(move |n| d.join(n)))
        .find(|p| p.is_file())
}

/// The message for "no TAESD decoder" (`part` "decoder") or "no TAESD encoder" (`part`
/// "encoder"): where Easel looked, what to put there, and a pickle it saw.
pub fn missing_taesd_message(dirs: &[PathBuf], part: &str) -> String {
    let folders = if dirs.is_empty() {
        "(no folder is configured)".to_owned()
    } else {
        dirs.iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let pickle = dirs
        .iter()
        .map(|d| d.join(format!("taesd_{part}.pth")))
        .find(|p| p.is_file());
    let download = if part == "decoder" {
        "taesd"
    } else {
        "taesd-encoder"
    };
    let mut msg = format!(
        "no TAESD {part} found: put taesd_{part}.safetensors (madebyollin/taesd on Hugging Face, or \
         `easel download {download}`) into one of {folders}"
    );
    if let Some(p) = pickle {
        msg.push_str("; ");
        msg.push_str(&p.display().to_string());
        msg.push_str(" is a Python pickle, which Easel never loads: use the .safetensors file");
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lora_fits_its_own_family_only() {
        let lora = |family| LoraEntry {
            name: "l".into(),
            path: PathBuf::from("/l.safetensors"),
            size_bytes: 1,
            thumbnail: None,
            family,
        };
        let sd1 = lora(Some("SD 1.x"));
        let xl = lora(Some("SDXL"));
        let unreadable = lora(None);
        assert_eq!(sd1.fit(Some(Family::Sd1)), LoraFit::Fits);
        assert_eq!(sd1.fit(Some(Family::Sd1Inpaint)), LoraFit::Fits);
        assert_eq!(
            xl.fit(Some(Family::Sd1)),
            LoraFit::Mismatch {
                lora: "SDXL",
                model: "SD 1.x"
            }
        );
        assert_eq!(
            sd1.fit(Some(Family::Sdxl)),
            LoraFit::Mismatch {
                lora: "SD 1.x",
                model: "SDXL"
            }
        );
        assert_eq!(xl.fit(Some(Family::Sdxl)), LoraFit::Fits);
        assert_eq!(unreadable.fit(Some(Family::Sd1)), LoraFit::Unknown);
        assert_eq!(sd1.fit(None), LoraFit::Unknown);
        assert_eq!(sd1.fit(Some(Family::Unknown)), LoraFit::Unknown);
    }

    #[test]
    fn finds_checkpoints_in_a1111_layout_with_thumbnails() {
        let dir = tempfile::tempdir().unwrap();
        let sd = dir.path().join("models").join("Stable-diffusion");
        std::fs::create_dir_all(sd.join("sub")).unwrap();
        let fixture =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/models/tiny-sd15.safetensors");
        std::fs::copy(&fixture, sd.join("sub").join("tiny.safetensors")).unwrap();
        std::fs::write(sd.join("sub").join("tiny.preview.png"), b"png").unwrap();
        std::fs::write(sd.join("old.ckpt"), b"pickle").unwrap();
        std::fs::write(sd.join("notes.txt"), b"hi").unwrap();
        let found = scan(&[dir.path().to_path_buf()]);
        let names: Vec<&str> = found.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["old", "tiny"]);
        assert!(found[0].problem.as_deref().unwrap_or("").contains("pickle"));
        assert_eq!(found[1].family, Some(Family::Sd1));
        assert!(found[1].problem.is_none());
        assert_eq!(
            found[1].thumbnail.as_deref(),
            Some(sd.join("sub").join("tiny.preview.png").as_path())
        );
    }
}
