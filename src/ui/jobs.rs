//! The app's errand runner: one named thread (`rewardlens-jobs`) that does the small file and
//! desktop tasks the UI thread must not (saving settings, reading a dropped prompt file, moving
//! files to the trash, putting files on the clipboard), and one short-lived thread per folder
//! dialog, which blocks until the user answers. Results come back as [`JobEvent`]s, each followed
//! by a wake-up.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::thread::JoinHandle;

use crate::image_file::ContentHash;
use crate::library::export::{ExportProgress, Pick, Transfer, export, plan, plan_ids};
use crate::library::metadata::read_generation_params;
use crate::library::store::Store;
use crate::library::trash::move_to_trash;
use crate::library::views::{SlimRow, ViewQuery};
use crate::wake::{Waker, wake};

use super::settings::{self, Settings};

/// Where a rerank prompt comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum PromptSource {
    /// A dropped `.txt` file: its text.
    TextFile(PathBuf),
    /// A dropped image: the prompt in its metadata.
    Image(PathBuf),
    /// The X11/Wayland primary selection (middle-click paste).
    PrimarySelection,
}

/// What a folder dialog is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialogPurpose {
    /// A folder of images to add to the library.
    AddFolder,
    /// The model folder.
    ModelFolder,
    /// The folder to export into.
    ExportFolder,
}

/// An export the user asked for in the app.
#[derive(Debug, Clone)]
pub struct ExportRequest {
    /// The view whose images (and rewards) are exported.
    pub query: ViewQuery,
    /// Only these images (the selection), in view order; `None` for the view.
    pub ids: Option<Vec<i64>>,
    /// How many of the view's best.
    pub pick: Pick,
    /// The folder.
    pub to: PathBuf,
    /// Copy or move.
    pub transfer: Transfer,
}

/// What an export did, for the dialog and the log.
#[derive(Debug, Clone)]
pub struct ExportReport {
    /// The folder.
    pub to: PathBuf,
    /// Newly written.
    pub exported: usize,
    /// Found already there.
    pub skipped: usize,
    /// Not exported, each with why.
    pub failed: Vec<(PathBuf, String)>,
    /// Stopped by Cancel.
    pub cancelled: bool,
    /// Moved, not copied (the library rows changed).
    pub moved: bool,
}

/// One file to move to the trash.
#[derive(Debug, Clone, PartialEq)]
pub struct TrashItem {
    /// The file.
    pub path: PathBuf,
    /// Its content, so the app can drop its textures.
    pub content_hash: Option<ContentHash>,
}

/// What to do with the selected images once their rows are at hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelectionAction {
    /// Favorite them all, or unfavorite them when all are favorites.
    ToggleFavorite,
    /// Set (or clear) their overall rating.
    Rate(Option<u8>),
    /// Ask before moving them to the trash.
    AskTrash,
    /// Put them on the clipboard.
    CopyFiles,
}

/// Ids read from the library per query when resolving a selection (under SQLite's parameter cap).
const IDS_PER_READ: usize = 10_000;

enum Job {
    SaveSettings(PathBuf, Box<Settings>),
    ResolveSelection(SelectionAction, Vec<i64>, Box<ViewQuery>),
    ReadPrompt(PromptSource),
    Trash(Vec<TrashItem>),
    CopyFiles(Vec<PathBuf>),
    Stop,
}

/// What an errand came to.
#[derive(Debug, Clone)]
pub enum JobEvent {
    /// The settings could not be saved.
    SettingsNotSaved(String),
    /// A prompt was read for a rerank.
    Prompt {
        /// Where from, for the status line.
        from: String,
        /// The prompt, or why there is none.
        result: Result<String, String>,
    },
    /// Files were moved to the trash (and marked missing); some may have failed.
    Trashed {
        /// Moved.
        moved: Vec<TrashItem>,
        /// Not moved (untouched), each with why.
        failed: Vec<(PathBuf, String)>,
    },
    /// Files were put on the clipboard (as a file list), or why not.
    Copied(Result<usize, String>),
    /// The rows of a selection larger than the app holds, for `action`; or why they could not be read.
    SelectionResolved {
        /// What the user asked for.
        action: SelectionAction,
        /// The selected images (those still in the library).
        rows: Result<Vec<SlimRow>, String>,
    },
    /// An export's progress.
    ExportProgress(ExportProgress),
    /// An export ended (or could not start).
    Exported(Result<ExportReport, String>),
    /// A folder dialog closed.
    Picked {
        /// What it was for.
        purpose: DialogPurpose,
        /// The folder, unless cancelled.
        folder: Option<PathBuf>,
    },
}

/// The handle; dropping it ends the thread after the errand in progress.
pub struct Jobs {
    db: PathBuf,
    jobs: Sender<Job>,
    events: Sender<JobEvent>,
    waker: Option<Waker>,
    dialog_open: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Jobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jobs").finish_non_exhaustive()
    }
}

impl Jobs {
    /// Starts the errand thread; `db` is the library the trash updates.
    pub fn start(db: PathBuf, waker: Option<Waker>) -> std::io::Result<(Self, Receiver<JobEvent>)> {
        let (jobs, inbox) = channel();
        let (events, receiver) = channel();
        let runner =
            Runner { db: db.clone(), store: None, clipboard: None, events: events.clone(), waker: waker.clone() };
        let thread = std::thread::Builder::new().name("rewardlens-jobs".into()).spawn(move || runner.run(&inbox))?;
        let dialog_open = std::sync::Arc::default();
        Ok((Self { db, jobs, events, waker, dialog_open, thread: Some(thread) }, receiver))
    }

    fn send(&self, job: Job) {
        // Fails only after the thread ended (at exit); nothing is left to do then.
        let _ = self.jobs.send(job);
    }

    /// Saves the settings (atomically) in the background.
    pub fn save_settings(&self, path: PathBuf, settings: Settings) {
        self.send(Job::SaveSettings(path, Box::new(settings)));
    }

    /// Reads a rerank prompt from a file, an image or the primary selection.
    pub fn read_prompt(&self, source: PromptSource) {
        self.send(Job::ReadPrompt(source));
    }

    /// Moves files to the system trash.
    pub fn trash(&self, items: Vec<TrashItem>) {
        self.send(Job::Trash(items));
    }

    /// Puts files on the clipboard as a file list (paste in a file manager or chat).
    pub fn copy_files(&self, paths: Vec<PathBuf>) {
        self.send(Job::CopyFiles(paths));
    }

    /// Reads the rows of these selected images (with `query`'s rewards) for `action`; answered by
    /// [`JobEvent::SelectionResolved`].
    pub fn resolve_selection(&self, action: SelectionAction, ids: Vec<i64>, query: ViewQuery) {
        self.send(Job::ResolveSelection(action, ids, Box::new(query)));
    }

    /// Exports on a thread of its own (an export of thousands of files must not hold up the other
    /// errands), with its own connection to the library; `cancel` stops it between files.
    pub fn export(&self, request: ExportRequest, cancel: Arc<AtomicBool>) -> std::io::Result<()> {
        let (events, waker, db) = (self.events.clone(), self.waker.clone(), self.db.clone());
        std::thread::Builder::new().name("rewardlens-export".into()).spawn(move || {
            crate::priority::set_current_thread_priority(crate::priority::Priority::Service);
            let send = |e: JobEvent| {
                let _ = events.send(e);
                wake(waker.as_ref());
            };
            let result = run_export(&db, &request, &cancel, &mut |p| send(JobEvent::ExportProgress(p.clone())));
            send(JobEvent::Exported(result));
        })?;
        Ok(())
    }

    /// Opens a folder dialog on its own thread; `false` when one is already open.
    pub fn pick_folder(&self, purpose: DialogPurpose) -> bool {
        use std::sync::atomic::Ordering;
        if self.dialog_open.swap(true, Ordering::SeqCst) {
            return false;
        }
        let (events, waker, open) = (self.events.clone(), self.waker.clone(), self.dialog_open.clone());
        let spawned = std::thread::Builder::new().name("rewardlens-dialog".into()).spawn(move || {
            let title = match purpose {
                DialogPurpose::AddFolder => "Add a folder of images",
                DialogPurpose::ModelFolder => "Choose the ImageReward model folder",
                DialogPurpose::ExportFolder => "Choose the folder to export into",
            };
            let folder = rfd::FileDialog::new().set_title(title).pick_folder();
            open.store(false, Ordering::SeqCst);
            let _ = events.send(JobEvent::Picked { purpose, folder });
            wake(waker.as_ref());
        });
        if spawned.is_err() {
            self.dialog_open.store(false, Ordering::SeqCst);
            return false;
        }
        true
    }
}

impl Drop for Jobs {
    fn drop(&mut self) {
        let _ = self.jobs.send(Job::Stop);
        if let Some(thread) = self.thread.take() {
            // Errands are short (one settings write, a few trash moves); waiting keeps them whole.
            let _ = thread.join();
        }
    }
}

struct Runner {
    db: PathBuf,
    store: Option<Store>,
    clipboard: Option<arboard::Clipboard>,
    events: Sender<JobEvent>,
    waker: Option<Waker>,
}

impl Runner {
    fn run(mut self, inbox: &Receiver<Job>) {
        while let Ok(job) = inbox.recv() {
            let event = match job {
                Job::Stop => break,
                Job::SaveSettings(path, settings) => match settings::save(&path, &settings) {
                    Ok(()) => continue,
                    Err(e) => JobEvent::SettingsNotSaved(format!("cannot save settings to {}: {e}", path.display())),
                },
                Job::ReadPrompt(source) => self.read_prompt(source),
                Job::Trash(items) => self.trash(items),
                Job::CopyFiles(paths) => JobEvent::Copied(self.copy_files(&paths)),
                Job::ResolveSelection(action, ids, query) => {
                    JobEvent::SelectionResolved { action, rows: self.selection_rows(&ids, &query) }
                }
            };
            let _ = self.events.send(event);
            wake(self.waker.as_ref());
        }
    }

    fn selection_rows(&mut self, ids: &[i64], query: &ViewQuery) -> Result<Vec<SlimRow>, String> {
        let store = self.store().map_err(|e| format!("library unavailable: {e}"))?;
        let mut rows = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(IDS_PER_READ) {
            rows.extend(store.slim_rows(chunk, query).map_err(|e| e.to_string())?);
        }
        Ok(rows)
    }

    /// The errands' own connection to the library, opened on first use.
    fn store(&mut self) -> Result<&mut Store, crate::library::store::StoreError> {
        let store = match self.store.take() {
            Some(store) => store,
            None => Store::open_background(&self.db)?,
        };
        Ok(self.store.insert(store))
    }

    fn read_prompt(&mut self, source: PromptSource) -> JobEvent {
        match source {
            PromptSource::TextFile(path) => {
                JobEvent::Prompt { from: super::file_label(&path), result: read_text_prompt(&path) }
            }
            PromptSource::Image(path) => {
                let result = match read_generation_params(&path) {
                    Ok(Some(params)) => params
                        .prompt
                        .filter(|p| !p.trim().is_empty())
                        .ok_or_else(|| format!("{} has generation metadata but no prompt", path.display())),
                    Ok(None) => Err(format!("{} carries no prompt in its metadata", path.display())),
                    Err(e) => Err(e.to_string()),
                };
                JobEvent::Prompt { from: super::file_label(&path), result }
            }
            PromptSource::PrimarySelection => {
                JobEvent::Prompt { from: "the selection".into(), result: self.primary_selection() }
            }
        }
    }

    fn clipboard(&mut self) -> Result<&mut arboard::Clipboard, String> {
        if self.clipboard.is_none() {
            self.clipboard = Some(arboard::Clipboard::new().map_err(|e| format!("no clipboard: {e}"))?);
        }
        self.clipboard.as_mut().ok_or_else(|| "no clipboard".to_string())
    }

    #[cfg(target_os = "linux")]
    fn primary_selection(&mut self) -> Result<String, String> {
        use arboard::{GetExtLinux, LinuxClipboardKind};
        let text = self.clipboard()?.get().clipboard(LinuxClipboardKind::Primary).text();
        text.map_err(|e| format!("nothing to paste from the selection: {e}"))
    }

    #[cfg(not(target_os = "linux"))]
    fn primary_selection(&mut self) -> Result<String, String> {
        self.clipboard()?.get_text().map_err(|e| format!("nothing to paste: {e}"))
    }

    fn copy_files(&mut self, paths: &[PathBuf]) -> Result<usize, String> {
        let clipboard = self.clipboard()?;
        clipboard.set().file_list(paths).map_err(|e| format!("cannot copy files: {e}"))?;
        Ok(paths.len())
    }

    fn trash(&mut self, items: Vec<TrashItem>) -> JobEvent {
        let (mut moved, mut failed) = (Vec::new(), Vec::new());
        let store = match self.store() {
            Ok(store) => store,
            Err(e) => {
                let failed = items.into_iter().map(|i| (i.path, format!("library unavailable: {e}"))).collect();
                return JobEvent::Trashed { moved, failed };
            }
        };
        for item in items {
            match move_to_trash(store, &item.path) {
                Ok(()) => moved.push(item),
                Err(e) => failed.push((item.path, e.to_string())),
            }
        }
        JobEvent::Trashed { moved, failed }
    }
}

/// Plans and runs one export with a connection of its own.
fn run_export(
    db: &Path,
    request: &ExportRequest,
    cancel: &AtomicBool,
    progress: &mut dyn FnMut(&ExportProgress),
) -> Result<ExportReport, String> {
    let mut store = Store::open_background(db).map_err(|e| format!("library unavailable: {e}"))?;
    let items = match &request.ids {
        Some(ids) => plan_ids(&store, ids, &request.query),
        None => plan(&store, &request.query, request.pick),
    }
    .map_err(|e| e.to_string())?;
    let model = request.query.model_id.as_deref();
    let summary = export(&mut store, &items, &request.to, request.transfer, model, progress, cancel)
        .map_err(|e| e.to_string())?;
    Ok(ExportReport {
        to: request.to.clone(),
        exported: summary.exported(),
        skipped: summary.skipped(),
        failed: summary.failed().into_iter().map(|(p, why)| (p.to_path_buf(), why.to_string())).collect(),
        cancelled: summary.cancelled,
        moved: request.transfer == Transfer::Move,
    })
}

/// The most of a prompt file read: a prompt is a line or a paragraph, not a book.
const PROMPT_FILE_LIMIT: u64 = 64 * 1024;

/// The text of a dropped prompt file, trimmed; refuses empty, binary and huge files.
fn read_text_prompt(path: &Path) -> Result<String, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if meta.len() > PROMPT_FILE_LIMIT {
        return Err(format!("{} is {} bytes; a prompt file holds at most 64 KiB", path.display(), meta.len()));
    }
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let text = String::from_utf8(bytes).map_err(|_| format!("{} is not UTF-8 text", path.display()))?;
    let text = text.trim();
    if text.is_empty() {
        return Err(format!("{} is empty", path.display()));
    }
    Ok(text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompt_files_are_read_trimmed_and_bad_ones_say_why() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("p.txt");
        std::fs::write(&good, "  a castle at dusk\n").unwrap();
        assert_eq!(read_text_prompt(&good).unwrap(), "a castle at dusk");
        let empty = dir.path().join("e.txt");
        std::fs::write(&empty, " \n").unwrap();
        assert!(read_text_prompt(&empty).unwrap_err().contains("empty"));
        let binary = dir.path().join("b.txt");
        std::fs::write(&binary, [0xff, 0xfe, 0x00]).unwrap();
        assert!(read_text_prompt(&binary).unwrap_err().contains("not UTF-8"));
        let huge = dir.path().join("h.txt");
        std::fs::write(&huge, vec![b'a'; 70_000]).unwrap();
        assert!(read_text_prompt(&huge).unwrap_err().contains("64 KiB"));
        assert!(read_text_prompt(&dir.path().join("absent.txt")).unwrap_err().contains("cannot read"));
    }
}
