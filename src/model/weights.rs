//! Checkpoint reading: memory-mapped safetensors or PyTorch zip checkpoints (through candle's
//! pickle reader, which runs no code), with errors that name the key and both shapes.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use candle_core::{DType, Device, Tensor};
use memmap2::Mmap;
use rayon::prelude::*;

use super::error::ModelError;

/// Key prefixes present in the released checkpoint but unused when scoring.
const UNUSED_AT_INFERENCE: &[&str] = &["blip.vision_proj.", "blip.text_proj."];
/// Buffers recomputed at run time rather than read.
const RECOMPUTED: &[&str] = &["blip.text_encoder.embeddings.position_ids"];

/// Where tensors come from: a file, or random values for benchmarks with no weights at hand.
pub enum WeightStore {
    /// A memory-mapped `.safetensors` file; pages are released once copied so peak memory stays near the weights' size.
    Safetensors {
        /// The file.
        path: PathBuf,
        /// The mapping.
        mmap: Mmap,
        /// Byte offset of the tensor data after the header.
        data_start: usize,
        /// Header entries by key.
        infos: HashMap<String, safetensors::tensor::TensorInfo>,
        /// Keys read so far.
        used: Mutex<BTreeSet<String>>,
    },
    /// A `torch.save` zip checkpoint (a bare state dict, or one level under a key such as `state_dict`).
    Pth {
        /// The file.
        path: PathBuf,
        /// candle's lazy reader.
        tensors: candle_core::pickle::PthTensors,
        /// Keys read so far.
        used: Mutex<BTreeSet<String>>,
    },
    /// Normal(0, std) values for every weight, ones for LayerNorm scales: only for timing the architecture.
    Random {
        /// Standard deviation of the weights.
        std: f32,
    },
}

impl WeightStore {
    /// Opens a weight file, choosing the reader from its extension (`.safetensors`, else PyTorch zip).
    pub fn open(path: &Path) -> Result<Self, ModelError> {
        let is_safetensors = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("safetensors"));
        if is_safetensors { Self::open_safetensors(path) } else { Self::open_pth(path) }
    }

    #[allow(unsafe_code)]
    fn open_safetensors(path: &Path) -> Result<Self, ModelError> {
        let file = std::fs::File::open(path).map_err(|source| ModelError::Io { path: path.to_path_buf(), source })?;
        // SAFETY: the mapping is read-only and private to this process; a concurrent truncation
        // of the file by another program is the one hazard of every mmap and is outside our control.
        let mmap = unsafe { Mmap::map(&file) }.map_err(|source| ModelError::Io { path: path.to_path_buf(), source })?;
        let bad = |reason: String| ModelError::WeightFile { path: path.to_path_buf(), reason };
        let (header_len, metadata) =
            safetensors::SafeTensors::read_metadata(&mmap).map_err(|e| bad(format!("not a safetensors file: {e}")))?;
        let infos: HashMap<String, safetensors::tensor::TensorInfo> =
            metadata.tensors().into_iter().map(|(k, v)| (k, v.clone())).collect();
        Ok(Self::Safetensors {
            path: path.to_path_buf(),
            mmap,
            data_start: 8 + header_len,
            infos,
            used: Mutex::new(BTreeSet::new()),
        })
    }

    fn open_pth(path: &Path) -> Result<Self, ModelError> {
        if !path.is_file() {
            return Err(ModelError::Io {
                path: path.to_path_buf(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
            });
        }
        let bad = |reason: String| ModelError::WeightFile { path: path.to_path_buf(), reason };
        // A bare state dict first (the released file), then the usual wrappers one level deep.
        for key in [None, Some("state_dict"), Some("model")] {
            let tensors = candle_core::pickle::PthTensors::new(path, key)
                .map_err(|e| bad(format!("not a PyTorch zip checkpoint ({e})")))?;
            if !tensors.tensor_infos().is_empty() {
                return Ok(Self::Pth { path: path.to_path_buf(), tensors, used: Mutex::new(BTreeSet::new()) });
            }
        }
        Err(bad("the checkpoint holds no tensors at the top level or under `state_dict`/`model`".into()))
    }

    /// The file behind this store, for messages.
    pub fn path(&self) -> &Path {
        match self {
            Self::Safetensors { path, .. } | Self::Pth { path, .. } => path,
            Self::Random { .. } => Path::new("<random weights>"),
        }
    }

    /// Shape of a stored tensor, or `None` when absent (or for random weights).
    pub fn shape(&self, key: &str) -> Option<Vec<usize>> {
        match self {
            Self::Safetensors { infos, .. } => infos.get(key).map(|i| i.shape.clone()),
            Self::Pth { tensors, .. } => tensors.tensor_infos().get(key).map(|i| i.layout.shape().dims().to_vec()),
            Self::Random { .. } => None,
        }
    }

    /// Every key in the file.
    pub fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = match self {
            Self::Safetensors { infos, .. } => infos.keys().cloned().collect(),
            Self::Pth { tensors, .. } => tensors.tensor_infos().keys().cloned().collect(),
            Self::Random { .. } => Vec::new(),
        };
        keys.sort();
        keys
    }

    /// Keys in the file the model never read and that are not known to be unused: a sign of a
    /// checkpoint for another architecture.
    pub fn unexpected_keys(&self) -> Vec<String> {
        let used = match self {
            Self::Safetensors { used, .. } | Self::Pth { used, .. } => match used.lock() {
                Ok(u) => u.clone(),
                Err(poisoned) => poisoned.into_inner().clone(),
            },
            Self::Random { .. } => return Vec::new(),
        };
        self.keys()
            .into_iter()
            .filter(|k| !used.contains(k))
            .filter(|k| !UNUSED_AT_INFERENCE.iter().any(|p| k.starts_with(p)) && !RECOMPUTED.contains(&k.as_str()))
            .collect()
    }

    /// Reads one tensor, checks its shape, converts it to `dtype` on `device`.
    pub fn get(&self, key: &str, shape: &[usize], dtype: DType, device: &Device) -> Result<Tensor, ModelError> {
        let missing = || ModelError::MissingKey { key: key.to_string(), path: self.path().to_path_buf() };
        let check = |found: &[usize]| {
            if found == shape {
                Ok(())
            } else {
                Err(ModelError::ShapeMismatch {
                    key: key.to_string(),
                    path: self.path().to_path_buf(),
                    expected: shape.to_vec(),
                    found: found.to_vec(),
                })
            }
        };
        let cpu = match self {
            Self::Safetensors { infos, used, .. } => {
                let info = infos.get(key).ok_or_else(missing)?;
                check(&info.shape)?;
                let tensor = self.read_safetensor(key, info)?;
                mark_used(used, key);
                tensor
            }
            Self::Pth { tensors, used, path } => {
                let info = tensors.tensor_infos().get(key).ok_or_else(missing)?;
                check(info.layout.shape().dims())?;
                let tensor = tensors
                    .get(key)
                    .map_err(|e| ModelError::WeightFile {
                        path: path.clone(),
                        reason: format!("reading `{key}`: {e}"),
                    })?
                    .ok_or_else(missing)?;
                mark_used(used, key);
                tensor
            }
            Self::Random { std } => {
                let is_norm_scale = key.ends_with("LayerNorm.weight")
                    || (key.ends_with(".weight") && (key.contains(".norm") || key.ends_with("norm.weight")));
                let t = if is_norm_scale {
                    Tensor::ones(shape, DType::F32, device)?
                } else {
                    Tensor::randn(0f32, *std, shape, device)?
                };
                return Ok(t.to_dtype(dtype)?);
            }
        };
        Ok(cpu.to_device(device)?.to_dtype(dtype)?)
    }

    /// Reads a `[out, in]` matrix and returns it transposed to `[in, out]`, contiguous, the layout
    /// the GEMM streams fastest. f32 safetensors on the CPU are transposed straight out of the
    /// mapping in one parallel pass; every other case transposes after loading.
    pub fn get_transposed(
        &self,
        key: &str,
        shape: [usize; 2],
        dtype: DType,
        device: &Device,
    ) -> Result<Tensor, ModelError> {
        if let Self::Safetensors { infos, used, .. } = self
            && let Some(info) = infos.get(key)
            && info.dtype == safetensors::Dtype::F32
            && info.shape == shape
            && dtype == DType::F32
            && matches!(device, Device::Cpu)
        {
            let [rows, cols] = shape;
            let transposed = self.with_safetensor_bytes(key, info, |bytes| {
                let mut out = vec![0f32; rows * cols];
                match bytemuck::try_cast_slice::<u8, f32>(bytes) {
                    Ok(src) => transpose_into(src, rows, cols, &mut out),
                    Err(_) => {
                        let src: Vec<f32> =
                            bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
                        transpose_into(&src, rows, cols, &mut out);
                    }
                }
                out
            })?;
            mark_used(used, key);
            return Ok(Tensor::from_vec(transposed, (cols, rows), device)?);
        }
        if let Self::Random { .. } = self {
            // Random values need no transposing: draw them in the final layout.
            return self.get(key, &[shape[1], shape[0]], dtype, device);
        }
        Ok(self.get(key, &shape, dtype, device)?.t()?.contiguous()?)
    }

    /// Runs `f` on a tensor's bytes in the mapping, then gives the pages back.
    #[allow(unsafe_code)]
    fn with_safetensor_bytes<T>(
        &self,
        key: &str,
        info: &safetensors::tensor::TensorInfo,
        f: impl FnOnce(&[u8]) -> T,
    ) -> Result<T, ModelError> {
        let Self::Safetensors { path, mmap, data_start, .. } = self else {
            return Err(ModelError::WeightFile { path: self.path().to_path_buf(), reason: "not safetensors".into() });
        };
        let (start, end) = info.data_offsets;
        let (start, end) = (data_start + start, data_start + end);
        let bytes = mmap.get(start..end).ok_or_else(|| ModelError::WeightFile {
            path: path.clone(),
            reason: format!("`{key}` lies beyond the end of the file"),
        })?;
        let out = f(bytes);
        // The bytes are copied: give the pages back so the file does not stay resident beside the copy.
        // SAFETY: the mapping is a read-only private file mapping and no slice into this range is
        // alive any more (`f` returned and its borrow ended); MADV_DONTNEED only drops the mapped
        // pages, which the kernel re-reads from the file should they be touched again.
        unsafe {
            let _ = mmap.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, start, end - start);
        }
        Ok(out)
    }

    fn read_safetensor(&self, key: &str, info: &safetensors::tensor::TensorInfo) -> Result<Tensor, ModelError> {
        let dtype = match info.dtype {
            safetensors::Dtype::F32 => DType::F32,
            safetensors::Dtype::F16 => DType::F16,
            safetensors::Dtype::BF16 => DType::BF16,
            safetensors::Dtype::F64 => DType::F64,
            safetensors::Dtype::I64 => DType::I64,
            other => {
                return Err(ModelError::WeightFile {
                    path: self.path().to_path_buf(),
                    reason: format!("`{key}` has unsupported dtype {other:?}"),
                });
            }
        };
        self.with_safetensor_bytes(key, info, |bytes| Tensor::from_raw_buffer(bytes, dtype, &info.shape, &Device::Cpu))?
            .map_err(ModelError::from)
    }
}

/// `dst[c][r] = src[r][c]` for a `rows × cols` matrix, tiled for the caches and split across threads.
fn transpose_into(src: &[f32], rows: usize, cols: usize, dst: &mut [f32]) {
    const TILE: usize = 64;
    dst.par_chunks_mut(TILE * rows).enumerate().for_each(|(block, out)| {
        let c0 = block * TILE;
        let c1 = (c0 + TILE).min(cols);
        for r0 in (0..rows).step_by(TILE) {
            let r1 = (r0 + TILE).min(rows);
            for c in c0..c1 {
                let out_row = &mut out[(c - c0) * rows..(c - c0 + 1) * rows];
                for r in r0..r1 {
                    out_row[r] = src[r * cols + c];
                }
            }
        }
    });
}

fn mark_used(used: &Mutex<BTreeSet<String>>, key: &str) {
    match used.lock() {
        Ok(mut u) => u.insert(key.to_string()),
        Err(poisoned) => poisoned.into_inner().insert(key.to_string()),
    };
}

/// A view of the store under a key prefix, so model code names keys exactly as the checkpoint does.
#[derive(Clone)]
pub struct Weights<'a> {
    store: &'a WeightStore,
    prefix: String,
    dtype: DType,
    device: Device,
}

/// Activations, biases, norms and embeddings stay in f32 whatever the weights' dtype: with f16
/// weights this keeps rewards within 2e-2 of f32 (pure-f16 activations drift past it), and on an
/// H100 pure-half activations were only 1.26x faster (measured 2026-11-23, tiny and full models).
pub const ACTIVATION_DTYPE: DType = DType::F32;

impl<'a> Weights<'a> {
    /// The root view, loading every tensor as `dtype` on `device`.
    pub fn new(store: &'a WeightStore, dtype: DType, device: &Device) -> Self {
        Self { store, prefix: String::new(), dtype, device: device.clone() }
    }

    /// A view one level down (`vb.pp("blocks").pp(3)` style).
    pub fn pp(&self, name: impl std::fmt::Display) -> Self {
        let prefix = if self.prefix.is_empty() { name.to_string() } else { format!("{}.{name}", self.prefix) };
        Self { prefix, ..self.clone() }
    }

    /// A view that loads in the activation dtype: biases, norms, embeddings.
    pub fn activations(&self) -> Self {
        self.with_dtype(ACTIVATION_DTYPE)
    }

    /// A view that loads in another dtype (the reward head stays f32, as in the reference).
    pub fn with_dtype(&self, dtype: DType) -> Self {
        Self { dtype, ..self.clone() }
    }

    fn key(&self, name: &str) -> String {
        if self.prefix.is_empty() { name.to_string() } else { format!("{}.{name}", self.prefix) }
    }

    /// Loads `name` under this prefix, checking its shape.
    pub fn get(&self, name: &str, shape: &[usize]) -> Result<Tensor, ModelError> {
        self.store.get(&self.key(name), shape, self.dtype, &self.device)
    }

    /// Loads the `[out, in]` matrix `name` transposed to `[in, out]` (see [`WeightStore::get_transposed`]).
    pub fn get_transposed(&self, name: &str, out_dim: usize, in_dim: usize) -> Result<Tensor, ModelError> {
        self.store.get_transposed(&self.key(name), [out_dim, in_dim], self.dtype, &self.device)
    }

    /// The stored shape of `name`, when the store knows it.
    pub fn shape(&self, name: &str) -> Option<Vec<usize>> {
        self.store.shape(&self.key(name))
    }

    /// The file behind the weights, for messages.
    pub fn path(&self) -> &Path {
        self.store.path()
    }

    /// The device tensors are placed on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The dtype tensors are loaded as.
    pub fn dtype(&self) -> DType {
        self.dtype
    }
}
