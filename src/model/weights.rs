//! Checkpoint reading: memory-mapped safetensors, or PyTorch zip checkpoints whose tensor index
//! comes from candle's pickle reader (which runs no code) and whose stored data is mapped too;
//! errors name the key and both shapes.

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

/// Where a tensor's little-endian, row-major bytes lie in the mapped file.
struct RawTensor {
    dtype: DType,
    shape: Vec<usize>,
    start: usize,
    end: usize,
}

/// Where tensors come from: a file, or random values for benchmarks with no weights at hand.
pub enum WeightStore {
    /// A weight file (`.safetensors`, or a `torch.save` zip), memory-mapped; pages are released
    /// once copied so peak memory stays near the weights' size.
    File {
        /// The file.
        path: PathBuf,
        /// The mapping.
        mmap: Mmap,
        /// Which format, with its index of tensors.
        index: FileIndex,
        /// Keys read so far.
        used: Mutex<BTreeSet<String>>,
    },
    /// Normal(0, std) values for every weight, ones for LayerNorm scales: only for timing the architecture.
    Random {
        /// Standard deviation of the weights.
        std: f32,
        /// When set, every tensor drawn is also kept by name (stored layout), so a random model
        /// can be written out as a weight file for benchmarks.
        record: Option<Mutex<Vec<(String, Tensor)>>>,
    },
}

/// The tensor index of a weight file.
pub enum FileIndex {
    /// safetensors header entries, with the offset of the data after the header.
    Safetensors {
        /// Byte offset of the tensor data.
        data_start: usize,
        /// Entries by key.
        infos: HashMap<String, safetensors::tensor::TensorInfo>,
    },
    /// A PyTorch zip checkpoint (a bare state dict, or one level under `state_dict`/`model`).
    Pth {
        /// candle's index of the pickled state dict (and its fallback reader for unusual layouts).
        tensors: candle_core::pickle::PthTensors,
        /// Byte range of each uncompressed zip entry (`archive/data/N`) in the file.
        entries: HashMap<String, (usize, usize)>,
    },
}

impl WeightStore {
    /// Opens a weight file, choosing the reader from its extension (`.safetensors`, else PyTorch zip).
    pub fn open(path: &Path) -> Result<Self, ModelError> {
        let mmap = map_file(path)?;
        let is_safetensors = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("safetensors"));
        let index = if is_safetensors { safetensors_index(path, &mmap)? } else { pth_index(path, &mmap)? };
        Ok(Self::File { path: path.to_path_buf(), mmap, index, used: Mutex::new(BTreeSet::new()) })
    }

    /// The file behind this store, for messages.
    pub fn path(&self) -> &Path {
        match self {
            Self::File { path, .. } => path,
            Self::Random { .. } => Path::new("<random weights>"),
        }
    }

    /// Shape of a stored tensor, or `None` when absent (or for random weights).
    pub fn shape(&self, key: &str) -> Option<Vec<usize>> {
        match self {
            Self::File { index: FileIndex::Safetensors { infos, .. }, .. } => infos.get(key).map(|i| i.shape.clone()),
            Self::File { index: FileIndex::Pth { tensors, .. }, .. } => {
                tensors.tensor_infos().get(key).map(|i| i.layout.shape().dims().to_vec())
            }
            Self::Random { .. } => None,
        }
    }

    /// Every key in the file.
    pub fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = match self {
            Self::File { index: FileIndex::Safetensors { infos, .. }, .. } => infos.keys().cloned().collect(),
            Self::File { index: FileIndex::Pth { tensors, .. }, .. } => {
                tensors.tensor_infos().keys().cloned().collect()
            }
            Self::Random { .. } => Vec::new(),
        };
        keys.sort();
        keys
    }

    /// Keys in the file the model never read and that are not known to be unused: a sign of a
    /// checkpoint for another architecture.
    pub fn unexpected_keys(&self) -> Vec<String> {
        let Self::File { used, .. } = self else { return Vec::new() };
        let used = match used.lock() {
            Ok(u) => u.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        self.keys()
            .into_iter()
            .filter(|k| !used.contains(k))
            .filter(|k| !UNUSED_AT_INFERENCE.iter().any(|p| k.starts_with(p)) && !RECOMPUTED.contains(&k.as_str()))
            .collect()
    }

    /// Checks that `key` exists with `shape`, naming both shapes when it does not.
    fn check_shape(&self, key: &str, shape: &[usize]) -> Result<(), ModelError> {
        let found = self
            .shape(key)
            .ok_or_else(|| ModelError::MissingKey { key: key.to_string(), path: self.path().to_path_buf() })?;
        if found == shape {
            Ok(())
        } else {
            Err(ModelError::ShapeMismatch {
                key: key.to_string(),
                path: self.path().to_path_buf(),
                expected: shape.to_vec(),
                found,
            })
        }
    }

    /// Where the tensor's bytes lie in the mapping, when they can be read in place.
    fn raw(&self, key: &str) -> Option<RawTensor> {
        match self {
            Self::File { index: FileIndex::Safetensors { data_start, infos }, .. } => {
                let info = infos.get(key)?;
                let dtype = match info.dtype {
                    safetensors::Dtype::F32 => DType::F32,
                    safetensors::Dtype::F16 => DType::F16,
                    safetensors::Dtype::BF16 => DType::BF16,
                    safetensors::Dtype::F64 => DType::F64,
                    safetensors::Dtype::I64 => DType::I64,
                    _ => return None,
                };
                let (start, end) = info.data_offsets;
                Some(RawTensor { dtype, shape: info.shape.clone(), start: data_start + start, end: data_start + end })
            }
            Self::File { index: FileIndex::Pth { tensors, entries }, .. } => {
                let info = tensors.tensor_infos().get(key)?;
                if !info.layout.is_contiguous() {
                    return None;
                }
                let (entry_start, entry_len) = *entries.get(&info.path)?;
                let elem = info.dtype.size_in_bytes();
                let start = entry_start + info.layout.start_offset() * elem;
                let end = start + info.layout.shape().elem_count() * elem;
                (end <= entry_start + entry_len).then(|| RawTensor {
                    dtype: info.dtype,
                    shape: info.layout.shape().dims().to_vec(),
                    start,
                    end,
                })
            }
            Self::Random { .. } => None,
        }
    }

    /// Reads one tensor, checks its shape, converts it to `dtype` on `device`.
    pub fn get(&self, key: &str, shape: &[usize], dtype: DType, device: &Device) -> Result<Tensor, ModelError> {
        let Self::File { path, index, used, .. } = self else {
            return self.draw(key, shape, dtype, device);
        };
        self.check_shape(key, shape)?;
        let cpu = match (self.raw(key), index) {
            (Some(raw), _) => self.with_mapped(key, &raw, |bytes| {
                Tensor::from_raw_buffer(bytes, raw.dtype, &raw.shape, &Device::Cpu)
            })??,
            // Unusual layouts (strided views saved as is): candle's own reader.
            (None, FileIndex::Pth { tensors, .. }) => tensors
                .get(key)
                .map_err(|e| ModelError::WeightFile { path: path.clone(), reason: format!("reading `{key}`: {e}") })?
                .ok_or_else(|| ModelError::MissingKey { key: key.to_string(), path: path.clone() })?,
            (None, FileIndex::Safetensors { .. }) => {
                return Err(ModelError::WeightFile {
                    path: path.clone(),
                    reason: format!("`{key}` has an unsupported dtype or lies beyond the end of the file"),
                });
            }
        };
        mark_used(used, key);
        Ok(cpu.to_device(device)?.to_dtype(dtype)?)
    }

    /// Reads a `[out, in]` matrix and returns it transposed to `[in, out]`, contiguous, the layout
    /// the GEMM streams fastest. f32 weights for the CPU are transposed straight out of the
    /// mapping in one parallel pass; every other case transposes after loading.
    pub fn get_transposed(
        &self,
        key: &str,
        shape: [usize; 2],
        dtype: DType,
        device: &Device,
    ) -> Result<Tensor, ModelError> {
        if let Self::Random { record, .. } = self {
            if record.is_some() {
                // Recorded in the stored `[out, in]` layout, as a checkpoint holds it.
                return Ok(self.draw(key, &shape, dtype, device)?.t()?.contiguous()?);
            }
            // Random values need no transposing: draw them in the final layout.
            return self.draw(key, &[shape[1], shape[0]], dtype, device);
        }
        if let Self::File { used, .. } = self
            && let Some(raw) = self.raw(key)
            && raw.dtype == DType::F32
            && raw.shape == shape
            && dtype == DType::F32
            && matches!(device, Device::Cpu)
        {
            let [rows, cols] = shape;
            let transposed = self.with_mapped(key, &raw, |bytes| {
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
        Ok(self.get(key, &shape, dtype, device)?.t()?.contiguous()?)
    }

    fn draw(&self, key: &str, shape: &[usize], dtype: DType, device: &Device) -> Result<Tensor, ModelError> {
        let std = match self {
            Self::Random { std, .. } => *std,
            Self::File { .. } => 0.0,
        };
        let is_norm_scale = key.ends_with("LayerNorm.weight") || (key.ends_with(".weight") && key.contains("norm"));
        let t = if is_norm_scale {
            Tensor::ones(shape, DType::F32, device)?
        } else {
            Tensor::randn(0f32, std, shape, device)?
        };
        if let Self::Random { record: Some(record), .. } = self {
            record.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push((key.to_string(), t.clone()));
        }
        Ok(t.to_dtype(dtype)?)
    }

    /// Normal(0, `std`) weights for timing the architecture.
    pub fn random(std: f32) -> Self {
        Self::Random { std, record: None }
    }

    /// Random weights that are also kept, for [`WeightStore::take_recorded`].
    pub fn recording(std: f32) -> Self {
        Self::Random { std, record: Some(Mutex::new(Vec::new())) }
    }

    /// The tensors a recording store drew, by key, in checkpoint layout.
    pub fn take_recorded(&self) -> Vec<(String, Tensor)> {
        match self {
            Self::Random { record: Some(record), .. } => {
                std::mem::take(&mut *record.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
            }
            _ => Vec::new(),
        }
    }

    /// Runs `f` on a tensor's bytes in the mapping, then gives the pages back.
    #[allow(unsafe_code)]
    fn with_mapped<T>(&self, key: &str, raw: &RawTensor, f: impl FnOnce(&[u8]) -> T) -> Result<T, ModelError> {
        let Self::File { path, mmap, .. } = self else {
            return Err(ModelError::WeightFile { path: self.path().to_path_buf(), reason: "no file".into() });
        };
        let bytes = mmap.get(raw.start..raw.end).ok_or_else(|| ModelError::WeightFile {
            path: path.clone(),
            reason: format!("`{key}` lies beyond the end of the file"),
        })?;
        let out = f(bytes);
        // The bytes are copied: give the pages back so the file does not stay resident beside the copy.
        // SAFETY: the mapping is a read-only private file mapping and no slice into this range is
        // alive any more (`f` returned and its borrow ended); MADV_DONTNEED only drops the mapped
        // pages, which the kernel re-reads from the file should they be touched again.
        unsafe {
            let _ = mmap.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, raw.start, raw.end - raw.start);
        }
        Ok(out)
    }
}

#[allow(unsafe_code)]
fn map_file(path: &Path) -> Result<Mmap, ModelError> {
    let io = |source| ModelError::Io { path: path.to_path_buf(), source };
    let file = std::fs::File::open(path).map_err(io)?;
    // SAFETY: the mapping is read-only and private to this process; a concurrent truncation
    // of the file by another program is the one hazard of every mmap and is outside our control.
    unsafe { Mmap::map(&file) }.map_err(io)
}

fn safetensors_index(path: &Path, mmap: &Mmap) -> Result<FileIndex, ModelError> {
    let (header_len, metadata) = safetensors::SafeTensors::read_metadata(mmap).map_err(|e| ModelError::WeightFile {
        path: path.to_path_buf(),
        reason: format!("not a safetensors file: {e}"),
    })?;
    let infos = metadata.tensors().into_iter().map(|(k, v)| (k, v.clone())).collect();
    Ok(FileIndex::Safetensors { data_start: 8 + header_len, infos })
}

fn pth_index(path: &Path, mmap: &Mmap) -> Result<FileIndex, ModelError> {
    let bad = |reason: String| ModelError::WeightFile { path: path.to_path_buf(), reason };
    // A bare state dict first (the released file), then the usual wrappers one level deep.
    let mut found = None;
    for key in [None, Some("state_dict"), Some("model")] {
        let tensors = candle_core::pickle::PthTensors::new(path, key)
            .map_err(|e| bad(format!("not a PyTorch zip checkpoint ({e})")))?;
        if !tensors.tensor_infos().is_empty() {
            found = Some(tensors);
            break;
        }
    }
    let tensors = found
        .ok_or_else(|| bad("the checkpoint holds no tensors at the top level or under `state_dict`/`model`".into()))?;
    // torch.save stores tensor data uncompressed: note where each entry's bytes start.
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(&mmap[..]))
        .map_err(|e| bad(format!("not a PyTorch zip checkpoint ({e})")))?;
    let mut entries = HashMap::new();
    for i in 0..archive.len() {
        let Ok(file) = archive.by_index_raw(i) else { continue };
        if file.compression() != zip::CompressionMethod::Stored {
            continue;
        }
        if let (Ok(name), Some(start)) = (file.name(), file.data_start()) {
            entries.insert(name.into_owned(), (start as usize, file.size() as usize));
        }
    }
    Ok(FileIndex::Pth { tensors, entries })
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
