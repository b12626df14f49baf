//! What the panels ask for: [`Command`]s pushed to one queue while drawing and applied by
//! `EaselApp::apply` in `logic`, after the frame that produced them.

use std::path::PathBuf;

use crate::engine::JobId;

/// A UI action, applied after the frame that produced it.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Queue a job with the prompt panel's parameters (image to image from the canvas when chosen).
    Generate,
    /// Cancel the running job.
    Cancel,
    /// Take a job out of the queue before it starts.
    RemoveQueued(JobId),
    /// Use this checkpoint for the next jobs.
    SelectModel(PathBuf),
    /// Append `<lora:name:1>` to the prompt.
    InsertLora(String),
    /// Ask for a model folder to add (a typed path, or the native dialog).
    AddFolder,
    /// Ask for a path of this kind (a typed path, or the native dialog).
    AskPath(PathKind),
    /// Run the native dialog for this kind of path.
    Browse(PathKind),
    /// Use a typed path: add it as a model folder, or open it on the canvas.
    UsePath(PathKind, PathBuf),
    /// List the model and LoRA folders again.
    Rescan,
    /// Open a gallery image (by index, newest first) on the canvas.
    ShowGalleryItem(usize),
    /// Take over the parameters of an A1111 infotext.
    UseParameters(String),
    /// Save generated images in this format from now on.
    SetOutputFormat(crate::infotext::OutputFormat),
    /// Switch the UI language (applies at once; saved in the settings); `None` follows the system.
    SetLanguage(Option<crate::config::Language>),
    /// Delete a gallery image (by index) from the outputs folder.
    DeleteGalleryItem(usize),
    /// Show the outputs folder in the system's file manager.
    OpenOutputs,
    /// Only-masked inpaint of the masked region with ADetailer's defaults.
    Refine,
    /// One job per strength, same seed.
    StrengthSweep,
    /// Detect faces in the canvas picture and make their grown boxes the mask.
    FindFaces,
    /// ADetailer's flow on the canvas picture: every face repainted, one new version.
    FixFaces,
    /// Detect hands in the canvas picture and make their grown boxes the mask.
    FindHands,
    /// ADetailer's flow on the canvas picture: every hand repainted, one new version.
    FixHands,
    /// Segment the people in the canvas picture and make them (or, with `true`, everything but
    /// them) the mask.
    SelectPeople {
        /// Select the background instead of the people.
        background: bool,
    },
    /// Show the previous staged result.
    StagedPrevious,
    /// Show the next staged result.
    StagedNext,
    /// Make the shown staged result the picture's next version.
    AcceptStaged,
    /// Drop the staged results; the picture stays as it is.
    DiscardStaged,
    /// Answer the offer shown after a result of another size was fitted into the picture: `true`
    /// makes the result the picture at its own size (a new version), `false` keeps the fitted one.
    ResultAtOwnSize(bool),
    /// Ask for an image to open onto the canvas (a typed path, or the native dialog).
    OpenImage,
    /// Save the document to its file (asking for a path the first time).
    Save,
    /// Answer the question shown when a document file was opened over unsaved changes: `true`
    /// opens it anyway, `false` keeps the open document.
    OpenOverUnsaved(bool),
    /// Open the clipboard's image on the canvas.
    PasteImage,
    /// Remove a message (by index) from the message list.
    DismissMessage(usize),
    /// Turn the Civitai lookup by hash on or off.
    SetCivitaiLookup(bool),
    /// Open the Get models window.
    GetModels,
    /// Apply the prompt panel's Fast preset (LCM, 6 steps, CFG 1.5, TAESD decode when present).
    FastPreset,
    /// Start a download on its own thread.
    StartDownload {
        /// Identifies the download in the window (a catalogue id or the typed source).
        key: String,
        /// What the window shows for it.
        label: String,
        /// What to download.
        request: Box<crate::download::DownloadRequest>,
    },
    /// Stop a running download (its `.part` file is kept for resuming).
    CancelDownload(String),
    /// Remove a finished download from the window's list.
    DismissDownload(String),
}

/// What a path asked for in the window is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathKind {
    /// A folder of checkpoints and LoRAs.
    ModelFolder,
    /// A picture to paint on.
    Image,
    /// The ControlNet section's control image.
    ControlImage,
    /// Where to export the canvas picture (PNG, JPEG or WebP by the extension).
    Export,
    /// Where to save the document (a `.easel` file).
    Document,
}
