//! What the app remembers between runs: the model and how it runs, cache caps, thumbnail size,
//! theme, watched folders, the view's order, and the window's place. Plain serde data in the
//! platform config folder; a missing field takes its default, and a damaged file is reported,
//! kept aside for the user and replaced by defaults, never a crash.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::scoring::{DeviceKind, ModelSpec, Precision};

/// The file name inside the config folder.
pub const FILE_NAME: &str = "settings.json";

/// Smallest and largest thumbnail cell, in points.
pub const THUMB_RANGE: std::ops::RangeInclusive<f32> = 64.0..=512.0;

/// Light or dark, or as the desktop says.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Theme {
    /// Follow the system.
    System,
    /// Dark (the default: images read better on it).
    #[default]
    Dark,
    /// Light.
    Light,
}

/// How the grid is ordered (the rerank prompt is not persisted: it is a moment's question).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SortKey {
    /// Best reward first.
    #[default]
    Reward,
    /// Newest first.
    Date,
    /// By folder and file name.
    Name,
    /// Highest rating first.
    Rating,
}

impl SortKey {
    /// Every key, in the order the menu lists them.
    pub const ALL: [Self; 4] = [Self::Reward, Self::Date, Self::Name, Self::Rating];

    /// The menu's word for it.
    pub fn label(self) -> &'static str {
        match self {
            Self::Reward => "Reward",
            Self::Date => "Date",
            Self::Name => "Name",
            Self::Rating => "Rating",
        }
    }
}

/// Where the window was, in logical points.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct WindowGeometry {
    /// Left edge of the outer window.
    pub x: f32,
    /// Top edge of the outer window.
    pub y: f32,
    /// Inner width.
    pub width: f32,
    /// Inner height.
    pub height: f32,
}

/// Everything persisted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// The model folder (or weight file); `None` until the user points at one.
    pub model_dir: Option<PathBuf>,
    /// Where the model runs.
    pub device: DeviceKind,
    /// Its precision; `None` picks by device.
    pub dtype: Option<Precision>,
    /// Images per forward pass; `None` picks by device.
    pub batch: Option<usize>,
    /// Disk cap of the thumbnail cache, MiB.
    pub thumb_cache_mib: u64,
    /// Disk cap of the image-embedding cache, GiB.
    pub embedding_cache_gib: f64,
    /// Memory cap of thumbnails held as textures, MiB.
    pub texture_cache_mib: u64,
    /// Thumbnail cell size, points.
    pub thumb_px: f32,
    /// Colours.
    pub theme: Theme,
    /// Folders to watch (the library remembers them too; this is what the user asked for).
    pub folders: Vec<PathBuf>,
    /// Grid order.
    pub sort: SortKey,
    /// Grid order reversed.
    pub reverse: bool,
    /// Whether the details panel is open.
    pub details_panel: bool,
    /// The window's last place.
    pub window: Option<WindowGeometry>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            model_dir: None,
            device: DeviceKind::Auto,
            dtype: None,
            batch: None,
            thumb_cache_mib: 2048,
            embedding_cache_gib: 4.0,
            texture_cache_mib: 256,
            thumb_px: 176.0,
            theme: Theme::Dark,
            folders: Vec::new(),
            sort: SortKey::Reward,
            reverse: false,
            details_panel: true,
            window: None,
        }
    }
}

impl Settings {
    /// The model as the scoring worker takes it, when one is set.
    pub fn model_spec(&self) -> Option<ModelSpec> {
        let path = self.model_dir.clone()?;
        Some(ModelSpec { path, device: self.device, dtype: self.dtype, batch: self.batch })
    }

    /// Values a hand-edited file may have put out of range, brought back into it.
    fn sanitized(mut self) -> Self {
        let defaults = Self::default();
        if !self.thumb_px.is_finite() {
            self.thumb_px = defaults.thumb_px;
        }
        self.thumb_px = self.thumb_px.clamp(*THUMB_RANGE.start(), *THUMB_RANGE.end());
        if !self.embedding_cache_gib.is_finite() || self.embedding_cache_gib < 0.0 {
            self.embedding_cache_gib = defaults.embedding_cache_gib;
        }
        self.texture_cache_mib = self.texture_cache_mib.clamp(32, 4096);
        self.batch = self.batch.map(|b| b.clamp(1, 512));
        self
    }
}

/// The settings file in the platform config folder (`~/.config/rewardlens/settings.json`).
pub fn default_path() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "rewardlens").map(|dirs| dirs.config_dir().join(FILE_NAME))
}

/// Settings as loaded, with what the user must be told about the file.
#[derive(Debug)]
pub struct Loaded {
    /// The settings (defaults where the file had nothing usable).
    pub settings: Settings,
    /// A message for the log when the file was damaged or unreadable.
    pub problem: Option<String>,
}

/// Reads the settings at `path`: a missing file gives defaults silently; a damaged one gives
/// defaults, is renamed aside (`settings.json.damaged`) so the user's text is not lost when the
/// defaults are saved over it, and is reported.
pub fn load(path: &Path) -> Loaded {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Loaded { settings: Settings::default(), problem: None };
        }
        Err(e) => {
            return Loaded {
                settings: Settings::default(),
                problem: Some(format!("cannot read settings {}: {e}; using defaults", path.display())),
            };
        }
    };
    match serde_json::from_slice::<Settings>(&bytes) {
        Ok(settings) => Loaded { settings: settings.sanitized(), problem: None },
        Err(e) => {
            let aside = path.with_extension("json.damaged");
            let kept = match std::fs::rename(path, &aside) {
                Ok(()) => format!("kept as {}", aside.display()),
                Err(rename) => format!("could not keep a copy: {rename}"),
            };
            Loaded {
                settings: Settings::default(),
                problem: Some(format!("settings file {} is damaged ({e}); using defaults, {kept}", path.display())),
            }
        }
    }
}

/// The settings at `path` if the file is there and whole, touching nothing (the window's place is
/// needed before the app starts; [`load`] reports and sets aside a damaged file).
pub fn peek(path: &Path) -> Option<Settings> {
    let bytes = std::fs::read(path).ok()?;
    serde_json::from_slice::<Settings>(&bytes).ok().map(Settings::sanitized)
}

/// Writes the settings atomically (a temporary file renamed over the old one), so a crash or a
/// full disk mid-write never leaves a half-written file.
pub fn save(path: &Path, settings: &Settings) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let text = serde_json::to_vec_pretty(settings).map_err(std::io::Error::other)?;
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_round_trip_and_missing_fields_take_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested").join(FILE_NAME);
        let settings = Settings {
            model_dir: Some("/m".into()),
            thumb_px: 200.0,
            folders: vec!["/a".into()],
            ..Settings::default()
        };
        save(&path, &settings).unwrap();
        let loaded = load(&path);
        assert_eq!(loaded.settings, settings);
        assert!(loaded.problem.is_none());

        std::fs::write(&path, r#"{"thumb_px": 9999, "theme": "light"}"#).unwrap();
        let loaded = load(&path);
        assert_eq!(loaded.settings.theme, Theme::Light);
        assert_eq!(loaded.settings.thumb_px, *THUMB_RANGE.end());
        assert_eq!(loaded.settings.texture_cache_mib, Settings::default().texture_cache_mib);
    }

    #[test]
    fn a_damaged_file_is_reported_kept_aside_and_replaced_by_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        std::fs::write(&path, b"{\"thumb_px\": 12").unwrap();
        let loaded = load(&path);
        assert_eq!(loaded.settings, Settings::default());
        let problem = loaded.problem.unwrap();
        assert!(problem.contains("damaged") && problem.contains("settings.json.damaged"), "{problem}");
        assert_eq!(std::fs::read(dir.path().join("settings.json.damaged")).unwrap(), b"{\"thumb_px\": 12");
        assert!(load(&dir.path().join("absent.json")).problem.is_none());
    }
}
