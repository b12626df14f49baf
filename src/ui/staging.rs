//! Results staged on the canvas: the variations of a picture shown in place, one at a time, with
//! previous/next, until one is accepted as the document's next version or all are discarded
//! (as Photoshop's generative fill and InvokeAI's staging area do). Pure bookkeeping; the canvas
//! draws the current candidate and the app applies an accepted one.
//!
//! Candidates belong to one picture of the document (its [`Document::picture_revision`]): when
//! the picture changes in another way (a new picture opened, undo across a version), they no
//! longer fit it and the staging is dropped (each result is in the gallery anyway).
//!
//! [`Document::picture_revision`]: crate::document::Document::picture_revision

use image::RgbImage;

/// What accepting a candidate does to the document.
#[derive(Debug, Clone, PartialEq)]
pub enum Accept {
    /// Its picture becomes the next version at the document's size; the mask stays. `own_size`
    /// is the result at its own size when it was fitted from another size (the canvas then
    /// offers to use it at that size).
    Fitted {
        /// The result before it was fitted into the picture.
        own_size: Option<RgbImage>,
    },
    /// Its picture (another size, e.g. a gallery image) becomes the picture at its own size; the
    /// mask does not fit it and starts empty (undo brings both back).
    OwnSize,
}

/// One staged variation.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// What is shown over the picture, and what accepting it makes the picture.
    pub picture: RgbImage,
    /// How accepting it changes the document.
    pub accept: Accept,
    /// A short label: "seed 1234", "strength 0.40 · seed 1234", a gallery file name.
    pub label: String,
    /// Its A1111 parameters, shown while it is the current one (`None` when it has none).
    pub infotext: Option<String>,
    /// The sweep strength it was made with: sweep candidates stay in strength order.
    pub strength: Option<f32>,
    /// Identifies it for the canvas's texture cache.
    pub id: u64,
}

impl Candidate {
    /// A candidate accepted at the picture's size, with no strength.
    pub fn new(picture: RgbImage, label: String) -> Self {
        Self {
            picture,
            accept: Accept::Fitted { own_size: None },
            label,
            infotext: None,
            strength: None,
            id: 0,
        }
    }
}

/// The candidates staged over one picture, and which one is shown.
#[derive(Debug)]
pub struct Staging {
    picture_revision: u64,
    candidates: Vec<Candidate>,
    current: usize,
    /// The user moved between candidates: new arrivals no longer take the view.
    browsed: bool,
}

/// Gives every candidate a number no other candidate had.
fn next_id() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

impl Staging {
    /// An empty staging over the picture at `picture_revision`.
    pub fn new(picture_revision: u64) -> Self {
        Self {
            picture_revision,
            candidates: Vec::new(),
            current: 0,
            browsed: false,
        }
    }

    /// The picture revision its candidates were made over.
    pub fn picture_revision(&self) -> u64 {
        self.picture_revision
    }

    /// Adds a candidate: sweep candidates in strength order, others after the rest. The new one
    /// is shown unless the user has been moving between candidates.
    pub fn add(&mut self, mut candidate: Candidate) {
        candidate.id = next_id();
        let at = match candidate.strength {
            Some(s) => self
                .candidates
                .iter()
                .position(|c| c.strength.is_some_and(|o| o > s))
                .unwrap_or(self.candidates.len()),
            None => self.candidates.len(),
        };
        self.candidates.insert(at, candidate);
        if self.browsed {
            // Keep showing the same candidate.
            if at <= self.current && self.candidates.len() > 1 {
                self.current += 1;
            }
        } else {
            self.current = at;
        }
    }

    /// How many candidates wait.
    pub fn len(&self) -> usize {
        self.candidates.len()
    }

    /// True when none waits.
    pub fn is_empty(&self) -> bool {
        self.candidates.is_empty()
    }

    /// The index of the shown candidate.
    pub fn position(&self) -> usize {
        self.current
    }

    /// The shown candidate.
    pub fn current(&self) -> Option<&Candidate> {
        self.candidates.get(self.current)
    }

    /// All candidates, in the order they are browsed.
    pub fn candidates(&self) -> &[Candidate] {
        &self.candidates
    }

    /// Shows the next candidate (after the last: the first).
    pub fn next(&mut self) {
        if !self.candidates.is_empty() {
            self.current = (self.current + 1) % self.candidates.len();
            self.browsed = true;
        }
    }

    /// Shows the previous candidate (before the first: the last).
    pub fn previous(&mut self) {
        if !self.candidates.is_empty() {
            self.current = (self.current + self.candidates.len() - 1) % self.candidates.len();
            self.browsed = true;
        }
    }

    /// Takes the shown candidate out to be accepted; the staging is over after that.
    pub fn accept(mut self) -> Option<Candidate> {
        (self.current < self.candidates.len()).then(|| self.candidates.swap_remove(self.current))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(label: &str, strength: Option<f32>) -> Candidate {
        let mut c = Candidate::new(RgbImage::new(2, 2), label.into());
        c.strength = strength;
        c
    }

    fn labels(s: &Staging) -> Vec<&str> {
        s.candidates().iter().map(|c| c.label.as_str()).collect()
    }

    #[test]
    fn new_results_are_shown_until_the_user_browses() {
        let mut s = Staging::new(7);
        assert!(s.is_empty() && s.current().is_none());
        s.add(candidate("a", None));
        s.add(candidate("b", None));
        assert_eq!(s.current().unwrap().label, "b", "the newest shows");
        s.previous();
        assert_eq!(s.current().unwrap().label, "a");
        s.add(candidate("c", None));
        assert_eq!(s.current().unwrap().label, "a", "browsing keeps the view");
        assert_eq!(labels(&s), ["a", "b", "c"]);
        s.previous();
        assert_eq!(s.current().unwrap().label, "c", "wraps around");
        s.next();
        assert_eq!(s.position(), 0);
        assert_eq!(s.picture_revision(), 7);
    }

    #[test]
    fn sweep_candidates_keep_strength_order_and_the_view_stays_put() {
        let mut s = Staging::new(1);
        s.add(candidate("0.5", Some(0.5)));
        s.add(candidate("0.3", Some(0.3)));
        assert_eq!(s.current().unwrap().label, "0.3");
        s.next();
        assert_eq!(s.current().unwrap().label, "0.5");
        // Arriving before the shown one shifts it, not the view.
        s.add(candidate("0.4", Some(0.4)));
        s.add(candidate("0.8", Some(0.8)));
        assert_eq!(labels(&s), ["0.3", "0.4", "0.5", "0.8"]);
        assert_eq!(s.current().unwrap().label, "0.5");
    }

    #[test]
    fn accepting_takes_the_shown_candidate_and_ids_are_unique() {
        let mut s = Staging::new(1);
        s.add(candidate("a", None));
        s.add(candidate("b", None));
        assert_ne!(s.candidates()[0].id, s.candidates()[1].id);
        s.next();
        assert_eq!(s.accept().unwrap().label, "a");
        assert!(Staging::new(1).accept().is_none());
    }
}
