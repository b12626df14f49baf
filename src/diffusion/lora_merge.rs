//! Merging LoRA sets into the loaded networks: the base weights stay loaded as they are (recorded by
//! name when the checkpoint is built); a set is applied by building the text encoder and UNet again
//! from those tensors, adding `w · scale · ΔW` to the targeted weights only. Removing LoRAs rebuilds
//! from the base tensors, so changing LoRAs between jobs never reads the checkpoint again and never
//! accumulates rounding.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;

use super::DiffusionError;
use crate::models::lora_file::{LoraFile, Part};

/// Weights of a network by parameter name, as the network was built (shared, not copied).
pub type WeightMap = HashMap<String, Tensor>;

/// LoRA module path (kohya `_`-joined or dotted) → parameter name in our networks.
pub type ModuleIndex = HashMap<String, String>;

/// One LoRA in a set, with its text-encoder and UNet multipliers.
#[derive(Debug, Clone)]
pub struct Applied {
    /// The file.
    pub lora: Arc<LoraFile>,
    /// Text-encoder multiplier.
    pub te: f32,
    /// UNet multiplier.
    pub unet: f32,
}

/// What applying a set did: matched modules, and keys that matched nothing (reported to the user).
#[derive(Debug, Default, Clone)]
pub struct ApplyReport {
    /// Modules merged.
    pub matched: usize,
    /// `(lora name, key)` of modules with no target in this model.
    pub unmatched: Vec<(String, String)>,
}

/// The parameter name of a module's weight in our networks, for a module path in a LoRA file.
/// Kohya joins diffusers module paths with `_`; PEFT keeps the dots.
pub fn index_modules(weights: &WeightMap) -> ModuleIndex {
    let mut index = HashMap::new();
    for name in weights.keys() {
        if let Some(module) = name.strip_suffix(".weight") {
            index.insert(module.replace('.', "_"), name.clone());
            index.insert(module.to_owned(), name.clone());
        }
    }
    index
}

/// Sums `w · scale · ΔW` per parameter for the modules of `set` that target `part`.
///
/// # Errors
/// A LoRA none of whose modules match (naming it), or shapes that do not fit.
pub fn deltas(
    set: &[Applied],
    part: Part,
    weights: &WeightMap,
    index: &ModuleIndex,
    report: &mut ApplyReport,
) -> Result<HashMap<String, Tensor>, DiffusionError> {
    let mut out: HashMap<String, Tensor> = HashMap::new();
    for applied in set {
        let multiplier = match part {
            Part::TextEncoder => applied.te,
            Part::Unet => applied.unet,
        };
        for (p, path, module) in applied.lora.modules() {
            if *p != part {
                continue;
            }
            let Some(param) = index.get(path) else {
                report
                    .unmatched
                    .push((applied.lora.name.clone(), module.key.clone()));
                continue;
            };
            let Some(base) = weights.get(param) else {
                continue;
            };
            report.matched += 1;
            if multiplier == 0.0 {
                continue;
            }
            let shape = base.dims().to_vec();
            let delta = module.delta(&shape, base.device()).map_err(|e| {
                DiffusionError::Input(format!(
                    "LoRA '{}': module {} does not fit {param} {shape:?}: {e}",
                    applied.lora.name, module.key
                ))
            })?;
            let delta = (delta * f64::from(module.scale() * multiplier))?;
            let sum = match out.remove(param) {
                Some(prev) => (prev + delta)?,
                None => delta,
            };
            out.insert(param.clone(), sum);
        }
    }
    Ok(out)
}

/// Builds a network from recorded weights plus deltas (f32 sums cast back to the weight's dtype).
pub struct MergedBackend {
    /// The base weights.
    pub base: Arc<WeightMap>,
    /// `ΔW` per parameter name, f32.
    pub deltas: HashMap<String, Tensor>,
}

impl SimpleBackend for MergedBackend {
    fn get(
        &self,
        s: Shape,
        name: &str,
        _init: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let t = self.get_unchecked(name, dtype, dev)?;
        if t.dims() == s.dims() { Ok(t) } else { t.reshape(s) }
    }

    fn get_unchecked(&self, name: &str, dtype: DType, _dev: &Device) -> candle_core::Result<Tensor> {
        let base = self
            .base
            .get(name)
            .ok_or_else(|| candle_core::Error::Msg(format!("no recorded weight {name}")))?;
        match self.deltas.get(name) {
            Some(d) => (base.to_dtype(DType::F32)? + d)?.to_dtype(dtype),
            None => Ok(base.clone()),
        }
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.base.contains_key(name)
    }
}

/// Wraps a backend and remembers every tensor it hands out.
pub struct RecordingBackend {
    /// The real source.
    pub inner: Box<dyn SimpleBackend>,
    /// What was handed out.
    pub record: Arc<Mutex<WeightMap>>,
}

impl SimpleBackend for RecordingBackend {
    fn get(
        &self,
        s: Shape,
        name: &str,
        init: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let t = self.inner.get(s, name, init, dtype, dev)?;
        self.record
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.to_owned(), t.clone());
        Ok(t)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        let t = self.inner.get_unchecked(name, dtype, dev)?;
        self.record
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.to_owned(), t.clone());
        Ok(t)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.inner.contains_tensor(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_index_maps_kohya_and_peft_names() {
        let mut w = WeightMap::new();
        w.insert(
            "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight".into(),
            Tensor::new(&[0f32], &Device::Cpu).unwrap(),
        );
        let idx = index_modules(&w);
        assert!(idx.contains_key("down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q"));
        assert!(idx.contains_key("down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q"));
    }
}
