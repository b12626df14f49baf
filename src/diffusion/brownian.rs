//! The Brownian noise of A1111's SDE samplers: torchsde 0.2.6's `BrownianTree` (a dyadic
//! `BrownianInterval` resolved to 1e-6, seeded through numpy's `SeedSequence`) with A1111's
//! replacement of its random draw: every draw is the first `randn` of a fresh generator of the
//! RNG setting (CPU or Philox), seeded with the tree node's seed. One tree per image seed.

use std::collections::{HashMap, VecDeque};

use candle_core::{Device, Tensor};

use super::DiffusionError;
use super::rng::{NoiseRng, NoiseSource as RngKind};

/// numpy's `SeedSequence` (O'Neill's seed_seq hashing) with a given pool size: turns entropy words
/// and a spawn key into well-mixed 32-bit seeds.
#[derive(Debug, Clone)]
pub struct SeedSequence {
    pool: Vec<u32>,
}

const INIT_A: u32 = 0x43b0_d7e5;
const MULT_A: u32 = 0x931e_8875;
const INIT_B: u32 = 0x8b51_f9dd;
const MULT_B: u32 = 0x58f3_8ded;
const MIX_MULT_L: u32 = 0xca01_f9dd;
const MIX_MULT_R: u32 = 0x4973_f715;
const XSHIFT: u32 = 16;

/// numpy's `_int_to_uint32_array`: little-endian 32-bit words, `[0]` for 0.
fn words(mut n: u128) -> Vec<u32> {
    if n == 0 {
        return vec![0];
    }
    let mut out = Vec::new();
    while n > 0 {
        out.push((n & 0xffff_ffff) as u32);
        n >>= 32;
    }
    out
}

fn hashmix(value: u32, hash_const: &mut u32) -> u32 {
    let mut value = value ^ *hash_const;
    *hash_const = hash_const.wrapping_mul(MULT_A);
    value = value.wrapping_mul(*hash_const);
    value ^ (value >> XSHIFT)
}

fn mix(x: u32, y: u32) -> u32 {
    let r = MIX_MULT_L
        .wrapping_mul(x)
        .wrapping_sub(MIX_MULT_R.wrapping_mul(y));
    r ^ (r >> XSHIFT)
}

impl SeedSequence {
    /// `SeedSequence(entropy, spawn_key=spawn_key, pool_size=pool_size)`.
    pub fn new(entropy: u128, spawn_key: &[u128], pool_size: usize) -> Self {
        let mut run = words(entropy);
        let spawn: Vec<u32> = spawn_key.iter().flat_map(|&k| words(k)).collect();
        if !spawn.is_empty() && run.len() < pool_size {
            run.resize(pool_size, 0);
        }
        let entropy: Vec<u32> = run.into_iter().chain(spawn).collect();
        let mut pool = vec![0u32; pool_size];
        let mut hash_const = INIT_A;
        for (i, slot) in pool.iter_mut().enumerate() {
            *slot = hashmix(entropy.get(i).copied().unwrap_or(0), &mut hash_const);
        }
        for src in 0..pool_size {
            for dst in 0..pool_size {
                if src != dst {
                    let h = hashmix(pool[src], &mut hash_const);
                    pool[dst] = mix(pool[dst], h);
                }
            }
        }
        for &word in entropy.iter().skip(pool_size) {
            for slot in &mut pool {
                let h = hashmix(word, &mut hash_const);
                *slot = mix(*slot, h);
            }
        }
        Self { pool }
    }

    /// `generate_state(n)` as uint32 words.
    pub fn generate_state(&self, n: usize) -> Vec<u32> {
        let mut hash_const = INIT_B;
        (0..n)
            .map(|i| {
                let mut v = self.pool[i % self.pool.len()] ^ hash_const;
                hash_const = hash_const.wrapping_mul(MULT_B);
                v = v.wrapping_mul(hash_const);
                v ^ (v >> XSHIFT)
            })
            .collect()
    }
}

/// torchsde's `BrownianTree` pool size.
const POOL_SIZE: usize = 24;
/// Node increments kept in memory besides the root (torchsde keeps 45; any size gives the same
/// values, since every node is recomputed from its seeds).
const CACHE_NODES: usize = 64;

/// Python's `round(x, 6)` (torchsde's `tol = 1e-6`): the double nearest to the correctly rounded
/// six-decimal value.
fn round6(x: f64) -> f64 {
    format!("{x:.6}").parse().unwrap_or(x)
}

#[derive(Debug, Clone)]
struct Node {
    start: f64,
    end: f64,
    parent: Option<usize>,
    is_left: bool,
    midway: Option<f64>,
    children: Option<(usize, usize)>,
    spawn_key: u128,
    depth: u128,
    /// Seed of this node's split draw (set when it is split).
    w_seed: u32,
}

/// One image's torchsde `BrownianTree` over [t0, t1] (σ space) with A1111's draws.
pub struct BrownianTree {
    kind: RngKind,
    entropy: u128,
    numel: usize,
    nodes: Vec<Node>,
    root_w: Vec<f32>,
    cache: HashMap<usize, Vec<f32>>,
    order: VecDeque<usize>,
}

impl BrownianTree {
    /// `torchsde.BrownianTree(t0, zeros(numel), t1, entropy=seed)` with A1111's `_randn`.
    pub fn new(kind: RngKind, seed: u64, t0: f64, t1: f64, numel: usize) -> Self {
        let entropy = u128::from(seed);
        let top = SeedSequence::new(entropy, &[], POOL_SIZE).generate_state(3);
        // W = randn(initial_W_seed)·sqrt(t1 − t0), with the unrounded ends.
        let scale = (t1 - t0).sqrt() as f32;
        let root_w = draw(kind, top[0], numel).into_iter().map(|v| v * scale).collect();
        let root = Node {
            start: round6(t0),
            end: round6(t1),
            parent: None,
            is_left: false,
            midway: None,
            children: None,
            spawn_key: 0,
            depth: 0,
            w_seed: 0,
        };
        Self {
            kind,
            entropy,
            numel,
            nodes: vec![root],
            root_w,
            cache: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// The Brownian increment W(tb) − W(ta) for ta ≤ tb, as torchsde's `BrownianInterval.__call__`.
    pub fn increment(&mut self, ta: f64, tb: f64) -> Vec<f32> {
        let (start, end) = (self.nodes[0].start, self.nodes[0].end);
        let ta = ta.clamp(start, end);
        let tb = tb.clamp(start, end);
        if ta == tb {
            return vec![0.0; self.numel];
        }
        let mut found = Vec::new();
        self.locate(0, round6(ta), round6(tb), &mut found);
        let mut w = self.node_w(found[0]);
        for &n in &found[1..] {
            let wi = self.node_w(n);
            for (a, b) in w.iter_mut().zip(wi) {
                *a += b;
            }
        }
        w
    }

    /// torchsde `_Interval._loc_inner` (ta < tb, both rounded): the existing or newly split nodes
    /// that tile [ta, tb], in order.
    fn locate(&mut self, n: usize, ta: f64, tb: f64, out: &mut Vec<usize>) {
        let node = &self.nodes[n];
        if ta < node.start || tb > node.end {
            if let Some(parent) = node.parent {
                return self.locate(parent, ta, tb, out);
            }
            return;
        }
        if ta == node.start && tb == node.end {
            out.push(n);
            return;
        }
        if let (Some(mid), Some((left, right))) = (node.midway, node.children) {
            if tb <= mid {
                self.locate(left, ta, tb, out);
            } else if ta >= mid {
                self.locate(right, ta, tb, out);
            } else {
                self.locate(left, ta, mid, out);
                self.locate(right, mid, tb, out);
            }
            return;
        }
        let at = if ta == node.start { tb } else { ta };
        self.split(n, at);
        let Some((left, right)) = self.nodes[n].children else {
            return;
        };
        let next = if ta == self.nodes[n].start { left } else { right };
        self.locate(next, ta, tb, out);
    }

    /// torchsde `_split` of the halfway tree: split at the rounded midpoint, then keep splitting
    /// the child that contains `at` until `at` is a boundary.
    fn split(&mut self, n: usize, at: f64) {
        let mut n = n;
        loop {
            if self.nodes[n].children.is_none() {
                self.split_exact(n);
            }
            let (Some(mid), Some((left, right))) = (self.nodes[n].midway, self.nodes[n].children) else {
                return;
            };
            if at > mid {
                n = right;
            } else if at < mid {
                n = left;
            } else {
                return;
            }
        }
    }

    fn split_exact(&mut self, n: usize) {
        let (start, end) = (self.nodes[n].start, self.nodes[n].end);
        let midway = 0.5 * (end + start);
        let (spawn_key, depth) = match self.nodes[n].parent {
            None => (0, 0),
            Some(p) => (
                2 * self.nodes[p].spawn_key + u128::from(!self.nodes[n].is_left),
                self.nodes[p].depth + 1,
            ),
        };
        let seeds = SeedSequence::new(self.entropy, &[spawn_key, depth], POOL_SIZE).generate_state(4);
        let left = self.nodes.len();
        let child = |start: f64, end: f64, is_left: bool| Node {
            start: round6(start),
            end: round6(end),
            parent: Some(n),
            is_left,
            midway: None,
            children: None,
            spawn_key: 0,
            depth: 0,
            w_seed: 0,
        };
        self.nodes.push(child(start, midway, true));
        self.nodes.push(child(midway, end, false));
        let node = &mut self.nodes[n];
        node.midway = Some(round6(midway));
        node.children = Some((left, left + 1));
        node.spawn_key = spawn_key;
        node.depth = depth;
        node.w_seed = seeds[0];
    }

    /// A node's increment from its parent's (torchsde without space-time Lévy area), in f32 as
    /// torch computes it: mean = left·W/h, left = mean + sqrt(left·right/h)·X, right = W − left.
    fn node_w(&mut self, n: usize) -> Vec<f32> {
        if n == 0 {
            return self.root_w.clone();
        }
        if let Some(w) = self.cache.get(&n) {
            return w.clone();
        }
        let Some(p) = self.nodes[n].parent else {
            return self.root_w.clone();
        };
        let parent_w = self.node_w(p);
        let parent = &self.nodes[p];
        let mid = parent.midway.unwrap_or(parent.start);
        let h_reciprocal = 1.0 / (parent.end - parent.start);
        let left_diff = mid - parent.start;
        let right_diff = parent.end - mid;
        let var = left_diff * right_diff * h_reciprocal;
        let noise = draw(self.kind, parent.w_seed, self.numel);
        let (ld, hr, sd) = (left_diff as f32, h_reciprocal as f32, var.sqrt() as f32);
        let is_left = self.nodes[n].is_left;
        let w: Vec<f32> = parent_w
            .iter()
            .zip(&noise)
            .map(|(&w, &x)| {
                let left = w * ld * hr + x * sd;
                if is_left { left } else { w - left }
            })
            .collect();
        self.cache.insert(n, w.clone());
        self.order.push_back(n);
        if self.order.len() > CACHE_NODES
            && let Some(old) = self.order.pop_front()
        {
            self.cache.remove(&old);
        }
        w
    }
}

/// A1111's `torchsde_randn`: the first draw of a fresh generator seeded with `seed`.
fn draw(kind: RngKind, seed: u32, numel: usize) -> Vec<f32> {
    NoiseRng::new(kind, u64::from(seed)).randn(numel)
}

/// k-diffusion's `BrownianTreeNoiseSampler` over a batch (one tree per image seed), as A1111's
/// `create_noise_sampler` builds it: the range is the smallest positive and the largest σ of the
/// schedule, and a call for (σ, σ_next) gives the increment over that interval, signed by the
/// direction and divided by sqrt|σ_next − σ|.
pub struct BrownianNoise {
    trees: Vec<BrownianTree>,
    shape: (usize, usize, usize),
    device: Device,
}

impl BrownianNoise {
    /// Trees for `seeds` over [σ_min, σ_max] for latents of `shape` per image.
    pub fn new(
        kind: RngKind,
        seeds: &[u64],
        sigma_min: f32,
        sigma_max: f32,
        shape: (usize, usize, usize),
        device: &Device,
    ) -> Self {
        let numel = shape.0 * shape.1 * shape.2;
        let (t0, t1) = (f64::from(sigma_min), f64::from(sigma_max));
        Self {
            trees: seeds
                .iter()
                .map(|&s| BrownianTree::new(kind, s, t0, t1, numel))
                .collect(),
            shape,
            device: device.clone(),
        }
    }

    /// The noise for a step from `sigma` to `sigma_next`, `[B, C, h, w]`.
    pub fn sample(&mut self, sigma: f32, sigma_next: f32) -> Result<Tensor, DiffusionError> {
        let (lo, hi, sign) = if sigma < sigma_next {
            (sigma, sigma_next, 1.0f32)
        } else {
            (sigma_next, sigma, -1.0f32)
        };
        let scale = (sigma_next - sigma).abs().sqrt();
        let per_image = self
            .trees
            .iter_mut()
            .map(|tree| {
                let w: Vec<f32> = tree
                    .increment(f64::from(lo), f64::from(hi))
                    .into_iter()
                    .map(|v| v * sign / scale)
                    .collect();
                Tensor::from_vec(w, self.shape, &self.device)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Tensor::stack(&per_image, 0)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_sequence_matches_numpy() {
        // numpy 2.4: SeedSequence(1234, pool_size=24).generate_state(3) and
        // SeedSequence(1234, spawn_key=(1, 1), pool_size=24).generate_state(4).
        assert_eq!(
            SeedSequence::new(1234, &[], 24).generate_state(3),
            NUMPY_TOP_1234.to_vec()
        );
        assert_eq!(
            SeedSequence::new(1234, &[1, 1], 24).generate_state(4),
            NUMPY_SPAWN_1234_1_1.to_vec()
        );
    }

    const NUMPY_TOP_1234: [u32; 3] = [4_280_268_349, 3_829_106_894, 2_675_148_735];
    const NUMPY_SPAWN_1234_1_1: [u32; 4] = [4_194_980_149, 1_264_809_205, 984_632_582, 4_110_760_162];

    #[test]
    fn seed_sequence_two_word_entropy() {
        // SeedSequence(2**32 + 4, spawn_key=(5, 3), pool_size=24).generate_state(4)
        assert_eq!(
            SeedSequence::new((1u128 << 32) + 4, &[5, 3], 24).generate_state(4),
            vec![3_063_241_990, 965_290_560, 50_194_758, 3_248_564_167]
        );
    }

    #[test]
    fn increments_add_up() {
        // W over [a, c] equals W over [a, b] plus W over [b, c], whatever the query order.
        let mut tree = BrownianTree::new(RngKind::Cpu, 7, 0.03, 14.6, 8);
        let ab = tree.increment(0.5, 2.0);
        let bc = tree.increment(2.0, 9.0);
        let ac = tree.increment(0.5, 9.0);
        for i in 0..8 {
            assert!((ab[i] + bc[i] - ac[i]).abs() < 1e-5, "{i}");
        }
        let mut fresh = BrownianTree::new(RngKind::Cpu, 7, 0.03, 14.6, 8);
        assert_eq!(fresh.increment(0.5, 9.0), ac);
    }
}
