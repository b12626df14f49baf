//! When to autosave the open document: a moment after the last edit, once per revision.
//! Pure bookkeeping; the app sends the save to the disk thread.

use std::time::Duration;

/// Seconds of quiet after an edit before the document is autosaved.
const AUTOSAVE_DELAY_SECS: f64 = 1.5;

/// What to do about the autosave this frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AutosaveStep {
    /// This revision is saved; nothing to do.
    Idle,
    /// Not yet: look again after this long.
    WaitFor(Duration),
    /// Save now, then call [`Autosave::mark_saved`].
    SaveNow,
}

/// Debounce state: the revision on disk, and the newest revision seen and when it was first seen.
#[derive(Debug, Default)]
pub struct Autosave {
    saved_revision: Option<u64>,
    seen_revision: Option<u64>,
    seen_at_secs: f64,
}

impl Autosave {
    /// Decides what to do for the document at `revision`; `now_secs` is egui's input time.
    pub fn step(&mut self, revision: u64, now_secs: f64) -> AutosaveStep {
        if self.saved_revision == Some(revision) {
            return AutosaveStep::Idle;
        }
        if self.seen_revision != Some(revision) {
            self.seen_revision = Some(revision);
            self.seen_at_secs = now_secs;
            return AutosaveStep::WaitFor(Duration::from_secs_f64(AUTOSAVE_DELAY_SECS));
        }
        let quiet_secs = now_secs - self.seen_at_secs;
        if quiet_secs >= AUTOSAVE_DELAY_SECS {
            AutosaveStep::SaveNow
        } else {
            AutosaveStep::WaitFor(Duration::from_secs_f64(AUTOSAVE_DELAY_SECS - quiet_secs))
        }
    }

    /// Records that `revision` is on disk (saved, or just loaded from there).
    pub fn mark_saved(&mut self, revision: u64) {
        self.saved_revision = Some(revision);
    }

    /// True when `revision` is what is on disk.
    pub fn is_saved(&self, revision: u64) -> bool {
        self.saved_revision == Some(revision)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saves_once_after_a_quiet_moment() {
        let mut autosave = Autosave::default();
        assert_eq!(
            autosave.step(1, 10.0),
            AutosaveStep::WaitFor(Duration::from_secs_f64(1.5))
        );
        assert_eq!(
            autosave.step(1, 11.0),
            AutosaveStep::WaitFor(Duration::from_secs_f64(0.5))
        );
        // Another edit restarts the wait.
        assert_eq!(
            autosave.step(2, 11.2),
            AutosaveStep::WaitFor(Duration::from_secs_f64(1.5))
        );
        assert_eq!(autosave.step(2, 12.7), AutosaveStep::SaveNow);
        autosave.mark_saved(2);
        assert!(autosave.is_saved(2));
        assert_eq!(autosave.step(2, 20.0), AutosaveStep::Idle);
    }
}
