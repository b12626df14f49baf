//! Op timer behind `easel bench --profile`: wall time and calls per kind of network op, summed over a run.
//! Off unless enabled; a timed call then costs one relaxed atomic load (CPU ops are eager, so no sync is needed).

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

/// The kinds of op the networks are timed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    /// 3×3 convolutions (stride 1 or 2), bias included.
    Conv3x3,
    /// 1×1 convolutions (shortcuts, `proj_in`/`proj_out`, `post_quant_conv`), bias included.
    Conv1x1,
    /// Linear layers (attention projections, feed-forward, time embedding), bias included.
    Linear,
    /// The attention core: `softmax(q kᵀ · scale) v`, with any head split/merge it needs.
    Attention,
    /// GroupNorm and LayerNorm, with a fused SiLU when there is one.
    Norm,
    /// Pointwise passes: SiLU, GEGLU, residual and bias adds.
    Elementwise,
    /// Copies that only move data: NCHW↔tokens transposes, concatenation, nearest upsampling, padding.
    Layout,
}

impl OpKind {
    /// Every kind, in report order.
    pub const ALL: [Self; 7] = [
        Self::Conv3x3,
        Self::Conv1x1,
        Self::Linear,
        Self::Attention,
        Self::Norm,
        Self::Elementwise,
        Self::Layout,
    ];

    /// Name in reports.
    pub fn label(self) -> &'static str {
        match self {
            Self::Conv3x3 => "conv 3x3",
            Self::Conv1x1 => "conv 1x1",
            Self::Linear => "linear",
            Self::Attention => "attention",
            Self::Norm => "norm",
            Self::Elementwise => "elementwise",
            Self::Layout => "layout copies",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

const KINDS: usize = OpKind::ALL.len();

static ENABLED: AtomicBool = AtomicBool::new(false);
static NANOS: [AtomicU64; KINDS] = [const { AtomicU64::new(0) }; KINDS];
static CALLS: [AtomicU64; KINDS] = [const { AtomicU64::new(0) }; KINDS];

thread_local! {
    /// True while this thread is inside a timed op: a nested op is counted in the outer one only.
    static INSIDE: Cell<bool> = const { Cell::new(false) };
}

/// Turns the timer on or off for the whole process.
pub fn set_enabled(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

/// Clears the totals.
pub fn reset() {
    for (n, c) in NANOS.iter().zip(&CALLS) {
        n.store(0, Ordering::Relaxed);
        c.store(0, Ordering::Relaxed);
    }
}

/// Runs `f`, adding its wall time to `kind` when the timer is on (and this is not a nested op).
#[inline]
pub fn time<T>(kind: OpKind, f: impl FnOnce() -> T) -> T {
    if !ENABLED.load(Ordering::Relaxed) || INSIDE.with(Cell::get) {
        return f();
    }
    INSIDE.with(|c| c.set(true));
    let started = Instant::now();
    let out = f();
    let nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
    INSIDE.with(|c| c.set(false));
    NANOS[kind.index()].fetch_add(nanos, Ordering::Relaxed);
    CALLS[kind.index()].fetch_add(1, Ordering::Relaxed);
    out
}

/// Time and calls of one kind of op.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OpTotal {
    /// Which ops.
    pub kind: OpKind,
    /// Summed wall time in seconds.
    pub secs: f64,
    /// Number of calls.
    pub calls: u64,
}

/// The totals since the last [`reset`], in [`OpKind::ALL`] order.
pub fn snapshot() -> Vec<OpTotal> {
    OpKind::ALL
        .iter()
        .map(|&kind| OpTotal {
            kind,
            secs: NANOS[kind.index()].load(Ordering::Relaxed) as f64 * 1e-9,
            calls: CALLS[kind.index()].load(Ordering::Relaxed),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_ops_count_once_in_the_outer_kind() {
        // The only test touching the global timer, so no other test races with it.
        reset();
        set_enabled(true);
        time(OpKind::Attention, || time(OpKind::Linear, || ()));
        set_enabled(false);
        time(OpKind::Layout, || ());
        let totals = snapshot();
        let calls = |k: OpKind| totals.iter().find(|t| t.kind == k).map(|t| t.calls);
        assert_eq!(calls(OpKind::Attention), Some(1));
        assert_eq!(calls(OpKind::Linear), Some(0));
        assert_eq!(calls(OpKind::Layout), Some(0));
        reset();
    }
}
