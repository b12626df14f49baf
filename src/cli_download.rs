//! `easel download SOURCE`: one model file into the folder for its kind, with a progress bar;
//! Ctrl-C cancels and keeps the `.part` file, which the next run resumes.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use easel::config::AppPaths;
use easel::download::{
    Catalogue, DownloadError, DownloadEvent, DownloadRequest, Endpoints, ModelKind, Source, download,
};

use crate::bad;

/// Arguments of `easel download`.
#[derive(clap::Args)]
pub struct DownloadArgs {
    /// A Hugging Face file (org/repo/file.safetensors or its page), a Civitai model or version (page
    /// URL, civitai:VERSION_ID or VERSION_ID), an https URL, or the id of a catalogue entry
    /// (`--list` shows them).
    #[arg(required_unless_present = "list")]
    source: Option<String>,
    /// Folder to put the file in [default: Easel's folder for its kind].
    #[arg(long)]
    to: Option<PathBuf>,
    /// checkpoint, lora, embedding, controlnet, vae or vae-approx [default: Civitai's model type,
    /// else checkpoint].
    #[arg(long)]
    kind: Option<String>,
    /// Hugging Face branch, tag or commit [default: main].
    #[arg(long)]
    revision: Option<String>,
    /// The SHA-256 the file must have (besides the hash the source publishes).
    #[arg(long)]
    sha256: Option<String>,
    /// List the starter catalogue (id, kind, size, licence) and exit.
    #[arg(long)]
    list: bool,
}

/// Runs `easel download`. Exit codes: 0 done, 2 a source or file the user can fix, 130 cancelled.
pub fn run(args: &DownloadArgs) -> anyhow::Result<ExitCode> {
    let catalogue = Catalogue::builtin().map_err(anyhow::Error::msg)?;
    if args.list {
        for e in &catalogue.entries {
            let size = e
                .size_bytes
                .map_or_else(|| "size unknown".into(), |b| format!("{:.2} GB", b as f64 / 1e9));
            println!(
                "{:<20} {:<11} {size:<13} {}  ({})",
                e.id,
                e.kind.name(),
                e.name,
                e.licence
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    let text = args.source.as_deref().unwrap_or_default();
    let mut request = match catalogue.entries.iter().find(|e| e.id == text.trim()) {
        Some(entry) => entry.request().map_err(|e| bad(e.to_string()))?,
        None => DownloadRequest::new(Source::parse(text).map_err(|e| bad(e.to_string()))?),
    };
    if let Some(revision) = &args.revision {
        request.source = request.source.at_revision(revision);
    }
    if let Some(kind) = &args.kind {
        request.kind = Some(ModelKind::parse(kind).ok_or_else(|| {
            bad(format!(
                "unknown --kind '{kind}'; use checkpoint, lora, embedding, controlnet, vae or vae-approx"
            ))
        })?);
    }
    if let Some(sha) = &args.sha256 {
        let sha = sha.trim().to_ascii_lowercase();
        if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad("--sha256 takes 64 hexadecimal digits"));
        }
        request.sha256 = Some(sha);
    }
    request.to.clone_from(&args.to);

    let cancel = Arc::new(AtomicBool::new(false));
    {
        let cancel = Arc::clone(&cancel);
        let mut interrupted = false;
        ctrlc::set_handler(move || {
            if interrupted {
                std::process::exit(130);
            }
            interrupted = true;
            eprintln!("\nstopping; the partial file is kept and the next download resumes from it");
            cancel.store(true, Ordering::Relaxed);
        })
        .map_err(|e| anyhow::anyhow!("could not install the Ctrl-C handler: {e}"))?;
    }
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} [{bar:30}] {bytes}/{total_bytes} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    bar.set_message("asking the server…");
    let mut on_event = |event: DownloadEvent| match event {
        DownloadEvent::Started {
            file_name,
            path,
            total_bytes,
            resumed_from_bytes,
        } => {
            bar.set_length(total_bytes.unwrap_or(0));
            bar.set_position(resumed_from_bytes);
            let resumed = if resumed_from_bytes > 0 {
                format!(" (resuming at {resumed_from_bytes} bytes)")
            } else {
                String::new()
            };
            bar.println(format!("downloading {file_name} to {}{resumed}", path.display()));
        }
        DownloadEvent::Progress(p) => {
            if let Some(total) = p.total_bytes {
                bar.set_length(total);
            }
            bar.set_position(p.bytes);
            let eta = p.eta_secs.map(|s| format!(", ETA {s:.0} s")).unwrap_or_default();
            bar.set_message(format!("{:.1} MB/s{eta}", p.bytes_per_sec / 1e6));
        }
        DownloadEvent::Retrying { attempt, why } => {
            bar.println(format!("{why}; resuming (retry {attempt})"));
        }
        DownloadEvent::Verifying => bar.set_message("checking the SHA-256…"),
    };
    let result = download(
        &request,
        &AppPaths::platform(),
        &Endpoints::from_env(),
        &cancel,
        &mut on_event,
    );
    bar.finish_and_clear();
    match result {
        Ok(done) => {
            let how = if done.already_present {
                "already there"
            } else if done.verified {
                "SHA-256 verified"
            } else {
                "no published hash to check"
            };
            println!(
                "{} ({}; sha256 {}, {how})",
                done.path.display(),
                done.kind.name(),
                done.sha256
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(err @ DownloadError::Cancelled { .. }) => {
            eprintln!("{err}");
            Ok(ExitCode::from(130))
        }
        Err(
            err @ (DownloadError::BadSource(_)
            | DownloadError::Insecure { .. }
            | DownloadError::Unauthorized { .. }
            | DownloadError::Forbidden { .. }
            | DownloadError::NotFound { .. }
            | DownloadError::Refused(_)
            | DownloadError::Exists { .. }),
        ) => Err(bad(err.to_string())),
        Err(err) => Err(anyhow::Error::new(err)),
    }
}
