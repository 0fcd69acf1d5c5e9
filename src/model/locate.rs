//! Finding an ImageReward model the user already has, so a new user needs no model folder: the
//! folder they chose, else where the Python package downloads it (`~/.cache/ImageReward`), else
//! the Hugging Face hub cache (`models--THUDM--ImageReward/snapshots/<rev>`). Every place looked at
//! is reported with what it holds, and a folder that is incomplete or corrupt is never used.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use super::config::MedConfig;
use super::model_dir::{ModelFiles, WEIGHT_FILES};
use super::weights::WeightStore;

/// The Hugging Face repository the published model lives in.
pub const HUB_REPO: &str = "THUDM/ImageReward";

/// The cache folders the Python tools use, read from the environment once (tests pass their own).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheDirs {
    /// `$HOME`.
    pub home: Option<PathBuf>,
    /// `$HF_HUB_CACHE`.
    pub hf_hub_cache: Option<PathBuf>,
    /// `$HF_HOME`.
    pub hf_home: Option<PathBuf>,
    /// `$XDG_CACHE_HOME`.
    pub xdg_cache_home: Option<PathBuf>,
}

impl CacheDirs {
    /// The folders this process's environment names.
    pub fn from_env() -> Self {
        Self::from_vars(|name| std::env::var_os(name))
    }

    /// The folders named by `var` (empty values count as unset, as in the Python tools).
    pub fn from_vars(var: impl Fn(&str) -> Option<OsString>) -> Self {
        let path = |name: &str| var(name).filter(|v| !v.is_empty()).map(PathBuf::from);
        Self {
            home: path("HOME"),
            hf_hub_cache: path("HF_HUB_CACHE"),
            hf_home: path("HF_HOME"),
            xdg_cache_home: path("XDG_CACHE_HOME"),
        }
    }

    /// `~/.cache/ImageReward`, where `image-reward`'s `load()` puts the checkpoint.
    pub fn image_reward_dir(&self) -> Option<PathBuf> {
        self.home.as_ref().map(|h| h.join(".cache").join("ImageReward"))
    }

    /// The Hugging Face home: `$HF_HOME`, else `$XDG_CACHE_HOME/huggingface`, else
    /// `~/.cache/huggingface` (it holds the token).
    pub fn hf_home(&self) -> Option<PathBuf> {
        self.hf_home
            .clone()
            .or_else(|| self.xdg_cache_home.as_ref().map(|x| x.join("huggingface")))
            .or_else(|| self.home.as_ref().map(|h| h.join(".cache").join("huggingface")))
    }

    /// The hub cache: `$HF_HUB_CACHE`, else the Hugging Face home's `hub`.
    pub fn hub_cache(&self) -> Option<PathBuf> {
        self.hf_hub_cache.clone().or_else(|| self.hf_home().map(|h| h.join("hub")))
    }

    /// The hub cache's folder for `repo` (`models--OWNER--NAME`).
    pub fn hub_repo_dir(&self, repo: &str) -> Option<PathBuf> {
        self.hub_cache().map(|c| c.join(format!("models--{}", repo.replace('/', "--"))))
    }
}

/// Where a model folder was found, which is also why it is used when it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelOrigin {
    /// `--model` or the app's setting.
    Chosen,
    /// `~/.cache/ImageReward`, the Python package's download folder.
    ImageRewardCache,
    /// A snapshot in the Hugging Face hub cache.
    HubCache {
        /// The snapshot's commit.
        revision: String,
    },
}

impl std::fmt::Display for ModelOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Chosen => f.write_str("the model folder chosen (--model or the setting)"),
            Self::ImageRewardCache => f.write_str("the ImageReward package's download folder"),
            Self::HubCache { revision } => {
                write!(f, "the Hugging Face hub cache, revision {}", &revision[..revision.len().min(12)])
            }
        }
    }
}

/// One place a model was looked for, and what is there.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// Why this place is looked at.
    pub origin: ModelOrigin,
    /// The folder (or weight file, when chosen so).
    pub path: PathBuf,
    /// The model's files when the folder is complete and readable; else what is wrong.
    pub found: Result<ModelFiles, String>,
}

impl Candidate {
    /// Whether this one can be used.
    pub fn is_usable(&self) -> bool {
        self.found.is_ok()
    }
}

/// Why no model could be used.
#[derive(Debug, thiserror::Error)]
pub enum LocateError {
    /// The chosen folder is broken: it is not silently replaced by another one.
    #[error("the model chosen at {} cannot be used: {problem}", path.display())]
    ChosenUnusable {
        /// The folder or file chosen.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// Nothing usable anywhere; each place looked at, with what it holds.
    #[error("no ImageReward model found ({}); `rewardlens model download` fetches it", summary(.looked))]
    NotFound {
        /// The places and their problems.
        looked: Vec<Candidate>,
    },
}

fn summary(looked: &[Candidate]) -> String {
    if looked.is_empty() {
        return "no cache folder is known: HOME is not set".into();
    }
    looked
        .iter()
        .map(|c| format!("{}: {}", c.path.display(), c.found.as_ref().err().map_or("usable", String::as_str)))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Every place looked at, in order of preference: `chosen`, the ImageReward folder, the hub cache.
pub fn candidates(chosen: Option<&Path>, dirs: &CacheDirs) -> Vec<Candidate> {
    let mut out = Vec::new();
    if let Some(path) = chosen {
        out.push(Candidate { origin: ModelOrigin::Chosen, path: path.to_path_buf(), found: check_model(path) });
    }
    if let Some(dir) = dirs.image_reward_dir() {
        let found = if dir.exists() { check_model(&dir) } else { Err("no such folder".into()) };
        out.push(Candidate { origin: ModelOrigin::ImageRewardCache, path: dir, found });
    }
    if let Some(repo_dir) = dirs.hub_repo_dir(HUB_REPO) {
        out.push(hub_candidate(&repo_dir));
    }
    out
}

/// The model to use: `chosen` when given (an error when it is broken), else the first usable
/// cache folder.
pub fn locate(chosen: Option<&Path>, dirs: &CacheDirs) -> Result<Candidate, LocateError> {
    let looked = candidates(chosen, dirs);
    if let Some(first) = looked.first().filter(|c| c.origin == ModelOrigin::Chosen) {
        return match &first.found {
            Ok(_) => Ok(first.clone()),
            Err(problem) => Err(LocateError::ChosenUnusable { path: first.path.clone(), problem: problem.clone() }),
        };
    }
    match looked.iter().find(|c| c.is_usable()) {
        Some(c) => Ok(c.clone()),
        None => Err(LocateError::NotFound { looked }),
    }
}

/// The hub cache's snapshot for the repository: the one `refs/main` names, else the newest.
fn hub_candidate(repo_dir: &Path) -> Candidate {
    let unusable = |path: PathBuf, revision: String, why: String| Candidate {
        origin: ModelOrigin::HubCache { revision },
        path,
        found: Err(why),
    };
    if !repo_dir.is_dir() {
        return unusable(repo_dir.to_path_buf(), String::new(), "no such folder".into());
    }
    let main = std::fs::read_to_string(repo_dir.join("refs").join("main")).ok().map(|s| s.trim().to_string());
    let snapshots = repo_dir.join("snapshots");
    let revision = main.filter(|rev| snapshots.join(rev).is_dir()).or_else(|| newest_subfolder(&snapshots));
    let Some(revision) = revision else {
        return unusable(repo_dir.to_path_buf(), String::new(), with_partial_note(repo_dir, "no snapshot".into()));
    };
    let dir = snapshots.join(&revision);
    match check_model(&dir) {
        Ok(files) => Candidate { origin: ModelOrigin::HubCache { revision }, path: dir, found: Ok(files) },
        Err(why) => unusable(dir, revision, with_partial_note(repo_dir, why)),
    }
}

fn newest_subfolder(dir: &Path) -> Option<String> {
    let entries = std::fs::read_dir(dir).ok()?;
    entries
        .flatten()
        .filter(|e| e.path().is_dir())
        .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok())
        .and_then(|e| e.file_name().into_string().ok())
}

/// Adds, when the hub folder holds a partial download, how far it got and how to finish it.
fn with_partial_note(repo_dir: &Path, why: String) -> String {
    let partial: u64 = std::fs::read_dir(repo_dir.join("blobs"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".incomplete"))
        .filter_map(|e| e.metadata().ok().map(|m| m.len()))
        .sum();
    if partial == 0 {
        return why;
    }
    format!("{why} (a download stopped after {partial} bytes; `rewardlens model download` resumes it)")
}

/// Checks that `path` holds a whole, readable model: its files exist (links included), the
/// configuration parses and the weight file's index reads. Says what is wrong otherwise.
pub fn check_model(path: &Path) -> Result<ModelFiles, String> {
    if path.is_dir() {
        let names = WEIGHT_FILES.iter().chain(std::iter::once(&"med_config.json"));
        for link in names.map(|n| path.join(n)) {
            if std::fs::symlink_metadata(&link).is_ok() && std::fs::metadata(&link).is_err() {
                return Err(format!("{} links to a file that is gone (an interrupted download?)", link.display()));
            }
        }
    }
    let files = ModelFiles::discover(path).map_err(|e| e.to_string())?;
    for file in [&files.weights, &files.med_config] {
        match std::fs::metadata(file) {
            Ok(m) if m.len() == 0 => return Err(format!("{} is empty", file.display())),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(format!("{} links to a file that is gone (an interrupted download?)", file.display()));
            }
            Err(e) => return Err(format!("cannot read {}: {e}", file.display())),
        }
    }
    let vision = files.vision_config().map_err(|e| e.to_string())?;
    MedConfig::from_file(&files.med_config, vision.width).map_err(|e| e.to_string())?;
    WeightStore::open(&files.weights).map_err(|e| format!("incomplete or corrupt weights: {e}"))?;
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TINY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tiny-pt");

    fn copy_tiny(to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for f in ["ImageReward.pt", "med_config.json", "vision_config.json"] {
            std::fs::copy(Path::new(TINY).join(f), to.join(f)).unwrap();
        }
    }

    fn dirs(home: &Path) -> CacheDirs {
        CacheDirs { home: Some(home.to_path_buf()), ..CacheDirs::default() }
    }

    #[test]
    fn the_hub_cache_follows_the_python_tools_precedence() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            CacheDirs::from_vars(move |n| pairs.iter().find(|(k, _)| *k == n).map(|(_, v)| OsString::from(v)))
        };
        let only_home = vars(&[("HOME", "/h")]);
        assert_eq!(only_home.hub_cache(), Some(PathBuf::from("/h/.cache/huggingface/hub")));
        assert_eq!(only_home.image_reward_dir(), Some(PathBuf::from("/h/.cache/ImageReward")));
        let xdg = vars(&[("HOME", "/h"), ("XDG_CACHE_HOME", "/x")]);
        assert_eq!(xdg.hub_cache(), Some(PathBuf::from("/x/huggingface/hub")));
        let hf_home = vars(&[("HOME", "/h"), ("XDG_CACHE_HOME", "/x"), ("HF_HOME", "/hf")]);
        assert_eq!(hf_home.hub_cache(), Some(PathBuf::from("/hf/hub")));
        let hub = vars(&[("HF_HOME", "/hf"), ("HF_HUB_CACHE", "/c"), ("XDG_CACHE_HOME", "")]);
        assert_eq!(hub.hub_cache(), Some(PathBuf::from("/c")));
        assert_eq!(hub.hub_repo_dir(HUB_REPO), Some(PathBuf::from("/c/models--THUDM--ImageReward")));
    }

    #[test]
    fn the_image_reward_folder_is_found_without_a_question() {
        let home = tempfile::tempdir().unwrap();
        copy_tiny(&home.path().join(".cache/ImageReward"));
        let found = locate(None, &dirs(home.path())).unwrap();
        assert_eq!(found.origin, ModelOrigin::ImageRewardCache);
        assert_eq!(found.path, home.path().join(".cache/ImageReward"));
    }

    #[test]
    fn a_hub_snapshot_named_by_refs_main_is_found() {
        let home = tempfile::tempdir().unwrap();
        let repo = home.path().join(".cache/huggingface/hub/models--THUDM--ImageReward");
        copy_tiny(&repo.join("snapshots/abc123"));
        copy_tiny(&repo.join("snapshots/old"));
        std::fs::create_dir_all(repo.join("refs")).unwrap();
        std::fs::write(repo.join("refs/main"), "abc123").unwrap();
        let found = locate(None, &dirs(home.path())).unwrap();
        assert_eq!(found.origin, ModelOrigin::HubCache { revision: "abc123".into() });
        assert_eq!(found.path, repo.join("snapshots/abc123"));
    }

    #[test]
    fn broken_folders_say_what_is_wrong_and_are_never_used() {
        let home = tempfile::tempdir().unwrap();
        // The ImageReward folder: weights cut short.
        let ir = home.path().join(".cache/ImageReward");
        copy_tiny(&ir);
        let bytes = std::fs::read(ir.join("ImageReward.pt")).unwrap();
        std::fs::write(ir.join("ImageReward.pt"), &bytes[..bytes.len() / 2]).unwrap();
        // The hub snapshot: a link to a blob that never finished, and the partial blob.
        let repo = home.path().join(".cache/huggingface/hub/models--THUDM--ImageReward");
        let snap = repo.join("snapshots/c0ffee");
        std::fs::create_dir_all(&snap).unwrap();
        std::fs::create_dir_all(repo.join("blobs")).unwrap();
        std::fs::write(repo.join("blobs/aa.incomplete"), vec![0u8; 1000]).unwrap();
        std::fs::copy(Path::new(TINY).join("med_config.json"), snap.join("med_config.json")).unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink("../../blobs/aa", snap.join("ImageReward.pt")).unwrap();

        let err = locate(None, &dirs(home.path())).unwrap_err();
        let LocateError::NotFound { looked } = &err else { panic!("{err}") };
        assert_eq!(looked.len(), 2);
        assert!(looked[0].found.as_ref().unwrap_err().contains("incomplete or corrupt weights"), "{err}");
        #[cfg(unix)]
        assert!(looked[1].found.as_ref().unwrap_err().contains("links to a file that is gone"), "{err}");
        assert!(err.to_string().contains("stopped after 1000 bytes"), "{err}");
        assert!(err.to_string().contains("rewardlens model download"), "{err}");
    }

    #[test]
    fn a_broken_chosen_folder_is_an_error_not_a_fallback() {
        let home = tempfile::tempdir().unwrap();
        copy_tiny(&home.path().join(".cache/ImageReward"));
        let chosen = home.path().join("mine");
        std::fs::create_dir(&chosen).unwrap();
        let err = locate(Some(&chosen), &dirs(home.path())).unwrap_err();
        assert!(matches!(err, LocateError::ChosenUnusable { .. }), "{err}");
        assert!(err.to_string().contains("med_config.json") || err.to_string().contains("ImageReward.pt"), "{err}");
        let ok = locate(Some(&home.path().join(".cache/ImageReward")), &dirs(home.path())).unwrap();
        assert_eq!(ok.origin, ModelOrigin::Chosen);
    }
}
