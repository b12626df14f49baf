//! The engine: a handle to one named worker thread that owns the loaded model, runs [`Request`]s in
//! order and streams [`Event`]s back. GUI, CLI and tests submit the same `Request`; cancel is an
//! atomic flag checked after every step.

mod cache;
mod worker;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

pub use crate::request::{GeneratedImage, PreviewImage, Request, StepInfo};

/// Identifies a job; ids only grow.
pub type JobId = u64;

/// A queued request with its id and cancel flag.
#[derive(Debug)]
struct Job {
    id: JobId,
    request: Request,
    cancel: Arc<AtomicBool>,
}

/// Whether a failure is the user's input (fixable by them) or something else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// Bad parameters, missing or broken files, unsupported models.
    BadInput,
    /// Anything else (out of memory, internal errors).
    Internal,
}

/// What the worker reports.
#[derive(Debug, Clone)]
pub enum Event {
    /// The job left the queue.
    Started {
        /// Job id.
        job: JobId,
    },
    /// A checkpoint is being loaded (this can take a while).
    LoadingModel {
        /// Job id.
        job: JobId,
        /// The checkpoint.
        path: PathBuf,
    },
    /// The checkpoint finished loading.
    ModelLoaded {
        /// Job id.
        job: JobId,
        /// Seconds it took.
        secs: f64,
    },
    /// A sampler step finished.
    Progress {
        /// Job id.
        job: JobId,
        /// Which step of which batch.
        info: StepInfo,
        /// Steps per second over this batch so far.
        steps_per_sec: f64,
        /// Estimated seconds left for the whole job.
        eta_secs: f64,
    },
    /// The cheap latent→RGB picture of the current step.
    Preview {
        /// Job id.
        job: JobId,
        /// Latent-resolution RGBA.
        image: PreviewImage,
    },
    /// An image is done.
    Image {
        /// Job id.
        job: JobId,
        /// The image (boxed: it is large).
        image: Box<GeneratedImage>,
    },
    /// A notice that did not stop the job.
    Warning {
        /// Job id.
        job: JobId,
        /// The text.
        message: String,
    },
    /// The job completed.
    Finished {
        /// Job id.
        job: JobId,
    },
    /// The job failed; the app keeps running.
    Failed {
        /// Job id.
        job: JobId,
        /// Input problem or internal problem.
        kind: FailureKind,
        /// The engine's message.
        message: String,
    },
    /// The job stopped because its cancel flag was set.
    Cancelled {
        /// Job id.
        job: JobId,
    },
}

/// Handle to the inference worker thread. Dropping it stops the worker after the current job.
pub struct Engine {
    commands: Option<SyncSender<Box<Job>>>,
    events: Receiver<Event>,
    worker: Option<JoinHandle<()>>,
    next_id: AtomicU64,
    cancel_all: Arc<AtomicBool>,
}

/// Capacity of the job queue.
const QUEUE_CAPACITY: usize = 64;
/// Capacity of the event channel; progress events are dropped rather than block the worker when it is full.
const EVENT_CAPACITY: usize = 256;

impl Engine {
    /// Starts the worker. `wake` is called after every event (the GUI passes `ctx.request_repaint`).
    pub fn spawn(wake: Option<Box<dyn Fn() + Send>>) -> std::io::Result<Self> {
        let (cmd_tx, cmd_rx) = sync_channel::<Box<Job>>(QUEUE_CAPACITY);
        let (ev_tx, ev_rx) = sync_channel::<Event>(EVENT_CAPACITY);
        let cancel_all = Arc::new(AtomicBool::new(false));
        let worker = std::thread::Builder::new().name("inference".into()).spawn({
            let shutdown = cancel_all.clone();
            move || worker::worker_loop(&cmd_rx, &ev_tx, &shutdown, wake.as_deref())
        })?;
        Ok(Self {
            commands: Some(cmd_tx),
            events: ev_rx,
            worker: Some(worker),
            next_id: AtomicU64::new(1),
            cancel_all,
        })
    }

    /// Queues a request; returns its id and its cancel flag (set it to stop the job after the
    /// current step, or before it starts).
    pub fn submit(&self, request: Request) -> (JobId, Arc<AtomicBool>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let cancel = Arc::new(AtomicBool::new(false));
        let job = Job {
            id,
            request,
            cancel: cancel.clone(),
        };
        if let Some(tx) = &self.commands
            && tx.send(Box::new(job)).is_err()
        {
            tracing::error!("the inference worker has stopped; job {id} was not queued");
        }
        (id, cancel)
    }

    /// The event stream.
    pub fn events(&self) -> &Receiver<Event> {
        &self.events
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.cancel_all.store(true, Ordering::Relaxed);
        self.commands = None; // closes the queue; the worker exits after the current job
        // Drain events so a worker blocked on a full channel can finish.
        while self.events.try_recv().is_ok() {}
        if let Some(worker) = self.worker.take() {
            while !worker.is_finished() {
                while self.events.try_recv().is_ok() {}
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            if worker.join().is_err() {
                tracing::error!("the inference worker panicked while stopping");
            }
        }
    }
}
