//! The SQLite store behind the library: watched folders, image rows, scores, and the user's
//! ratings, comparisons and favorites.
//!
//! User data is keyed by content hash, never by path or row id, so it survives moves, renames and
//! a folder being removed and added again. WAL mode, a busy timeout and short `IMMEDIATE`
//! transactions let two processes share one file without "database is locked".

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::metadata::prompt_group_key;
use crate::image_file::ContentHash;
use crate::model::TokenKey;
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};

/// File name of the store inside the platform data directory.
pub const DEFAULT_FILE_NAME: &str = "library.sqlite3";

/// How long a writer waits for another connection's transaction before giving up.
pub const BUSY_TIMEOUT: Duration = Duration::from_millis(5000);

/// Forward migrations, in order: step `i` takes `user_version` from `i` to `i + 1`.
/// Never edit a released step; append a new one.
const MIGRATIONS: &[&str] = &[
    // v1: folders, images, scores, and user data keyed by content hash.
    "CREATE TABLE folders (
        id INTEGER PRIMARY KEY,
        path TEXT NOT NULL UNIQUE,
        added_at INTEGER NOT NULL,
        present INTEGER NOT NULL DEFAULT 1 CHECK (present IN (0, 1)),
        last_scan_at INTEGER
    );
    CREATE TABLE images (
        id INTEGER PRIMARY KEY,
        folder_id INTEGER REFERENCES folders(id) ON DELETE CASCADE,
        path TEXT NOT NULL UNIQUE,
        content_hash TEXT,
        size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        width INTEGER,
        height INTEGER,
        format TEXT,
        generator TEXT,
        prompt TEXT,
        negative_prompt TEXT,
        params_json TEXT,
        prompt_key TEXT,
        missing INTEGER NOT NULL DEFAULT 0 CHECK (missing IN (0, 1)),
        error TEXT,
        added_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    );
    CREATE INDEX images_content_hash ON images(content_hash);
    CREATE INDEX images_prompt_key ON images(prompt_key);
    CREATE INDEX images_folder_id ON images(folder_id);
    CREATE TABLE scores (
        content_hash TEXT NOT NULL,
        model_id TEXT NOT NULL,
        prompt TEXT NOT NULL,
        value REAL NOT NULL,
        scored_at INTEGER NOT NULL,
        PRIMARY KEY (content_hash, model_id, prompt)
    );
    CREATE TABLE ratings (
        content_hash TEXT PRIMARY KEY,
        overall INTEGER CHECK (overall BETWEEN 1 AND 7),
        alignment INTEGER CHECK (alignment BETWEEN 1 AND 7),
        fidelity INTEGER CHECK (fidelity BETWEEN 1 AND 7),
        updated_at INTEGER NOT NULL
    );
    CREATE TABLE comparisons (
        id INTEGER PRIMARY KEY,
        prompt TEXT NOT NULL,
        winner_hash TEXT NOT NULL,
        loser_hash TEXT NOT NULL,
        tie INTEGER NOT NULL DEFAULT 0 CHECK (tie IN (0, 1)),
        created_at INTEGER NOT NULL
    );
    CREATE TABLE favorites (
        content_hash TEXT PRIMARY KEY,
        added_at INTEGER NOT NULL
    );",
    // v2: scores keyed by what the model sees of the prompt (its token ids), so prompts differing
    // only in case, spacing or accents share one score; prompts interned; checkpoint, sampler and
    // seed as indexed columns; v1 scores kept in `legacy_scores` until a model of theirs re-keys
    // them (that needs the model's tokenizer).
    "CREATE TABLE prompts (
        id INTEGER PRIMARY KEY,
        text TEXT NOT NULL UNIQUE,
        group_key TEXT NOT NULL
    );
    CREATE INDEX prompts_group_key ON prompts(group_key);
    INSERT OR IGNORE INTO prompts (text, group_key)
        SELECT prompt, prompt_key FROM images WHERE prompt IS NOT NULL AND prompt_key IS NOT NULL;
    ALTER TABLE images ADD COLUMN prompt_id INTEGER REFERENCES prompts(id);
    ALTER TABLE images ADD COLUMN checkpoint TEXT;
    ALTER TABLE images ADD COLUMN checkpoint_hash TEXT;
    ALTER TABLE images ADD COLUMN sampler TEXT;
    ALTER TABLE images ADD COLUMN seed INTEGER;
    UPDATE images SET prompt_id = (SELECT id FROM prompts WHERE text = images.prompt) WHERE prompt IS NOT NULL;
    UPDATE images SET
        checkpoint = json_extract(params_json, '$.model'),
        checkpoint_hash = json_extract(params_json, '$.model_hash'),
        sampler = json_extract(params_json, '$.sampler'),
        seed = json_extract(params_json, '$.seed')
        WHERE params_json IS NOT NULL AND json_valid(params_json);
    CREATE INDEX images_prompt_id ON images(prompt_id);
    CREATE INDEX images_checkpoint ON images(checkpoint);
    CREATE INDEX images_sampler ON images(sampler);
    CREATE INDEX images_generator ON images(generator);
    CREATE INDEX images_seed ON images(seed);
    CREATE TABLE prompt_tokens (
        model_id TEXT NOT NULL,
        prompt_id INTEGER NOT NULL REFERENCES prompts(id),
        token_key INTEGER NOT NULL,
        truncated INTEGER NOT NULL CHECK (truncated IN (0, 1)),
        PRIMARY KEY (model_id, prompt_id)
    ) WITHOUT ROWID;
    ALTER TABLE scores RENAME TO legacy_scores;
    CREATE TABLE scores (
        content_hash TEXT NOT NULL,
        model_id TEXT NOT NULL,
        token_key INTEGER NOT NULL,
        value REAL NOT NULL,
        scored_at INTEGER NOT NULL,
        PRIMARY KEY (content_hash, model_id, token_key)
    ) WITHOUT ROWID;
    CREATE TABLE meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );",
    // v3: covering indexes for views and groups. A view reads its images in content-hash order
    // from `images_view` (about 100 bytes per image instead of the whole row with its parameters)
    // and merges in its rewards from one pass over the scores in the same order: the table itself
    // for a model's own-prompt scores, `scores_by_model` for one prompt's.
    "CREATE INDEX images_view ON images(content_hash, missing, prompt_id, checkpoint, checkpoint_hash, error);
    CREATE INDEX scores_by_model ON scores(model_id, token_key, content_hash, value);",
    // v4: judgments as preference data: each comparison keeps the model in use and the rewards
    // the two images had when it was made, and an undo marks it instead of deleting it (history);
    // a prompt group's ranking with each image's rank (ties share one) and reward; problem flags
    // and a note beside the 1-7 ratings, as in the reference's annotation scheme.
    "ALTER TABLE comparisons ADD COLUMN model_id TEXT;
    ALTER TABLE comparisons ADD COLUMN winner_reward REAL;
    ALTER TABLE comparisons ADD COLUMN loser_reward REAL;
    ALTER TABLE comparisons ADD COLUMN undone_at INTEGER;
    CREATE INDEX comparisons_prompt ON comparisons(prompt);
    CREATE TABLE rankings (
        id INTEGER PRIMARY KEY,
        prompt TEXT NOT NULL,
        model_id TEXT,
        created_at INTEGER NOT NULL,
        undone_at INTEGER
    );
    CREATE INDEX rankings_prompt ON rankings(prompt);
    CREATE TABLE ranking_items (
        ranking_id INTEGER NOT NULL REFERENCES rankings(id) ON DELETE CASCADE,
        content_hash TEXT NOT NULL,
        rank INTEGER NOT NULL CHECK (rank >= 1),
        reward REAL,
        PRIMARY KEY (ranking_id, content_hash)
    ) WITHOUT ROWID;
    ALTER TABLE ratings ADD COLUMN flags INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE ratings ADD COLUMN note TEXT;",
];

/// Every connection's cache settings: a 64 MiB page cache keeps a 100k-image library's indexes in
/// memory between views (the default 2 MiB re-reads them for every view), and mapping the file
/// saves a copy per page read.
pub(crate) const CACHE_PRAGMAS: &str = "PRAGMA cache_size = -65536; PRAGMA mmap_size = 268435456;";

/// Cache settings of a background connection (watcher, scoring worker, errands): an 8 MiB page
/// cache and no memory map, so a process with several connections holds the file's pages once
/// (each connection's map would count them again) and the views' connection keeps its speed.
const BACKGROUND_CACHE_PRAGMAS: &str = "PRAGMA cache_size = -8192; PRAGMA mmap_size = 0;";

/// The `meta` key naming the model the library was last scored with.
const LAST_MODEL_KEY: &str = "last_model_id";

/// The schema version this build writes and reads.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// Why the store could not be opened, read or written; every variant names the database file.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite refused an operation.
    #[error("library database {path}: {source}")]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// The file was written by a newer RewardLens; we leave it untouched rather than downgrade it.
    #[error(
        "library database {path} has schema version {found}, newer than this build's {supported}; \
         update RewardLens (the file was not changed)"
    )]
    TooNew {
        /// The database file.
        path: PathBuf,
        /// Version found in the file.
        found: u32,
        /// Newest version this build knows.
        supported: u32,
    },
    /// No platform data directory could be determined (no home directory).
    #[error("no data directory for RewardLens on this platform; pass a database path")]
    NoDataDir,
    /// The folder for the database could not be created.
    #[error("cannot create {path}: {source}")]
    CreateDir {
        /// The folder.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// A watched folder as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Folder {
    /// Row id, referenced by images.
    pub id: i64,
    /// The folder path as added.
    pub path: PathBuf,
    /// Whether the folder existed at its last scan (an unplugged drive reads as absent).
    pub present: bool,
    /// Unix seconds of the last completed scan.
    pub last_scan_at: Option<i64>,
}

/// What a scan learned about one image file: everything in an `images` row except its id,
/// flags and timestamps.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImageRecord {
    /// Watched folder it was found under.
    pub folder_id: Option<i64>,
    /// Absolute (or as-given) file path.
    pub path: PathBuf,
    /// Content hash; `None` when the file could not be read.
    pub content_hash: Option<ContentHash>,
    /// File size in bytes, compared on rescan.
    pub size: u64,
    /// Modification time in nanoseconds since the Unix epoch, compared on rescan.
    pub mtime_ns: i64,
    /// Width in pixels from the header.
    pub width: Option<u32>,
    /// Height in pixels from the header.
    pub height: Option<u32>,
    /// Container format (`"png"`, `"jpeg"`, `"webp"`).
    pub format: Option<String>,
    /// Generator that wrote the metadata.
    pub generator: Option<String>,
    /// Positive prompt.
    pub prompt: Option<String>,
    /// Negative prompt.
    pub negative_prompt: Option<String>,
    /// The full `GenerationParams` as JSON.
    pub params_json: Option<String>,
    /// Normalised prompt used to group images.
    pub prompt_key: Option<String>,
    /// Why the file is unusable, when it is.
    pub error: Option<String>,
    /// Checkpoint (generator model) name, for filters and the leaderboard.
    pub checkpoint: Option<String>,
    /// Checkpoint hash as the generator printed it.
    pub checkpoint_hash: Option<String>,
    /// Sampler name.
    pub sampler: Option<String>,
    /// Noise seed.
    pub seed: Option<i64>,
}

/// An `images` row as read back.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageRow {
    /// Row id; stable across moves detected by content hash.
    pub id: i64,
    /// The stored fields.
    pub record: ImageRecord,
    /// Whether the file was absent at the last scan.
    pub missing: bool,
}

/// One score to record.
#[derive(Debug, Clone, Copy)]
pub struct ScoreRow<'a> {
    /// The image content.
    pub content_hash: &'a ContentHash,
    /// The prompt as given (interned, for views and reports).
    pub prompt: &'a str,
    /// What the model saw of it: the score's key.
    pub tokens: TokenKey,
    /// Whether the model cut the prompt at 35 tokens.
    pub truncated: bool,
    /// The normalised reward.
    pub value: f64,
}

/// A score stored before schema v2, keyed by the raw prompt text.
#[derive(Debug, Clone, PartialEq)]
pub struct LegacyScore {
    /// The image content.
    pub content_hash: ContentHash,
    /// The prompt text it was scored against.
    pub prompt: String,
    /// The reward.
    pub value: f64,
    /// Unix seconds it was scored at.
    pub scored_at: i64,
}

/// A user's 1..7 ratings of one image (any may be unset).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Rating {
    /// Overall preference.
    pub overall: Option<u8>,
    /// Text-image alignment.
    pub alignment: Option<u8>,
    /// Image fidelity.
    pub fidelity: Option<u8>,
}

/// An open library database. One per thread; open another for another thread or process.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
    path: PathBuf,
}

/// Current time in Unix seconds.
pub(crate) fn now_secs() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Starts the stored text of a path that is not UTF-8 (a stored path otherwise starts with `/` or
/// a drive letter, never with this).
const RAW_PATH_MARK: char = '\u{1}';

/// A path as stored text: a UTF-8 path as it is; any other (a Unix file name is bytes: common
/// after unzipping an archive made elsewhere) after [`RAW_PATH_MARK`], with every byte that is not
/// part of valid UTF-8, and every `%`, written `%XX`, so [`path_from_text`] gives the exact bytes
/// back and the file is found again.
pub(crate) fn path_text(path: &Path) -> std::borrow::Cow<'_, str> {
    if let Some(text) = path.to_str() {
        return text.into();
    }
    let bytes = path.as_os_str().as_encoded_bytes();
    let mut out = String::with_capacity(bytes.len() + 8);
    out.push(RAW_PATH_MARK);
    for chunk in bytes.utf8_chunks() {
        out.push_str(&chunk.valid().replace('%', "%25"));
        for b in chunk.invalid() {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out.into()
}

/// The path a stored text stands for (see [`path_text`]).
pub(crate) fn path_from_text(text: &str) -> PathBuf {
    let Some(escaped) = text.strip_prefix(RAW_PATH_MARK) else { return PathBuf::from(text) };
    let mut bytes = Vec::with_capacity(escaped.len());
    let mut rest = escaped.as_bytes();
    while let Some((&b, tail)) = rest.split_first() {
        let hex = tail.get(..2).and_then(|h| std::str::from_utf8(h).ok()).and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b, hex) {
            (b'%', Some(byte)) => {
                bytes.push(byte);
                rest = &tail[2..];
            }
            _ => {
                bytes.push(b);
                rest = tail;
            }
        }
    }
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStringExt;
        PathBuf::from(std::ffi::OsString::from_vec(bytes))
    }
    #[cfg(not(unix))]
    {
        PathBuf::from(String::from_utf8_lossy(&bytes).into_owned())
    }
}

impl Store {
    /// Opens (creating and migrating as needed) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_with(path, CACHE_PRAGMAS)
    }

    /// Opens the database for a background thread of a process that has its own connection for
    /// views: same file and schema, a small cache and no memory map (see
    /// [`BACKGROUND_CACHE_PRAGMAS`]).
    pub fn open_background(path: &Path) -> Result<Self, StoreError> {
        Self::open_with(path, BACKGROUND_CACHE_PRAGMAS)
    }

    fn open_with(path: &Path, cache_pragmas: &str) -> Result<Self, StoreError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(|source| StoreError::CreateDir { path: parent.to_path_buf(), source })?;
        }
        let sql_err = |source| StoreError::Sqlite { path: path.to_path_buf(), source };
        let conn = Connection::open(path).map_err(sql_err)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(sql_err)?;
        let mut store = Self { conn, path: path.to_path_buf() };
        // Check the version before any pragma that writes, so a newer file is never touched.
        let found = store.user_version()?;
        if found > SCHEMA_VERSION {
            return Err(StoreError::TooNew { path: store.path, found, supported: SCHEMA_VERSION });
        }
        store
            .conn
            .execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")
            .map_err(sql_err)?;
        store.conn.execute_batch(cache_pragmas).map_err(sql_err)?;
        store.migrate()?;
        Ok(store)
    }

    /// Opens the default database in the platform data directory (`library.sqlite3`).
    pub fn open_default() -> Result<Self, StoreError> {
        Self::open(&Self::default_path()?)
    }

    /// Where [`Store::open_default`] keeps the database.
    pub fn default_path() -> Result<PathBuf, StoreError> {
        let dirs = directories::ProjectDirs::from("", "", "RewardLens").ok_or(StoreError::NoDataDir)?;
        Ok(dirs.data_dir().join(DEFAULT_FILE_NAME))
    }

    /// The database file, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        move |source| StoreError::Sqlite { path: self.path.clone(), source }
    }

    /// The schema version stored in the file (`PRAGMA user_version`).
    pub fn user_version(&self) -> Result<u32, StoreError> {
        self.conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(self.err())
    }

    /// Runs each pending migration in its own transaction; another process migrating at the same
    /// time is waited for and its work not repeated.
    fn migrate(&mut self) -> Result<(), StoreError> {
        let path = self.path.clone();
        let sql_err = |source| StoreError::Sqlite { path: path.clone(), source };
        loop {
            let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(sql_err)?;
            let version: u32 = tx.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(sql_err)?;
            if version > SCHEMA_VERSION {
                return Err(StoreError::TooNew { path, found: version, supported: SCHEMA_VERSION });
            }
            let Some(step) = MIGRATIONS.get(version as usize) else {
                return Ok(());
            };
            tx.execute_batch(step).map_err(sql_err)?;
            tx.pragma_update(None, "user_version", version + 1).map_err(sql_err)?;
            tx.commit().map_err(sql_err)?;
        }
    }

    /// Runs `f` on the connection for a read, naming the database in any error.
    pub(crate) fn read<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, StoreError> {
        f(&self.conn).map_err(self.err())
    }

    /// Runs `f` in a short write transaction taken up front (`IMMEDIATE`), so it waits on the busy
    /// timeout instead of failing when another connection writes.
    pub(crate) fn write<T>(&mut self, f: impl FnOnce(&Transaction) -> rusqlite::Result<T>) -> Result<T, StoreError> {
        let path = self.path.clone();
        let sql_err = |source| StoreError::Sqlite { path: path.clone(), source };
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(sql_err)?;
        let value = f(&tx).map_err(sql_err)?;
        tx.commit().map_err(sql_err)?;
        Ok(value)
    }

    /// Adds a watched folder (or marks an existing one present) and returns its id.
    pub fn add_folder(&mut self, path: &Path) -> Result<i64, StoreError> {
        let text = path_text(path).into_owned();
        self.write(|tx| {
            tx.query_row(
                "INSERT INTO folders (path, added_at, present) VALUES (?1, ?2, 1)
                 ON CONFLICT(path) DO UPDATE SET present = 1 RETURNING id",
                params![text, now_secs()],
                |r| r.get(0),
            )
        })
    }

    /// Stops watching a folder and forgets its image rows; ratings, comparisons, favorites and
    /// scores are keyed by content hash and stay. Returns whether the folder was known.
    pub fn remove_folder(&mut self, path: &Path) -> Result<bool, StoreError> {
        let text = path_text(path).into_owned();
        self.write(|tx| {
            tx.execute("DELETE FROM images WHERE folder_id IN (SELECT id FROM folders WHERE path = ?1)", [&text])?;
            Ok(tx.execute("DELETE FROM folders WHERE path = ?1", [&text])? > 0)
        })
    }

    /// Every watched folder, by path.
    pub fn folders(&self) -> Result<Vec<Folder>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id, path, present, last_scan_at FROM folders ORDER BY path")
            .map_err(self.err())?;
        let rows = stmt
            .query_map([], |r| {
                Ok(Folder {
                    id: r.get(0)?,
                    path: path_from_text(&r.get::<_, String>(1)?),
                    present: r.get(2)?,
                    last_scan_at: r.get(3)?,
                })
            })
            .map_err(self.err())?;
        rows.collect::<Result<_, _>>().map_err(self.err())
    }

    /// Inserts or updates the row for `record.path` (clearing `missing`) and returns its id.
    pub fn upsert_image(&mut self, record: &ImageRecord) -> Result<i64, StoreError> {
        self.write(|tx| upsert_image_tx(tx, record))
    }

    /// Marks the row at `path` missing (the file is gone; the row and its user data stay).
    pub fn mark_missing(&mut self, path: &Path) -> Result<bool, StoreError> {
        let text = path_text(path).into_owned();
        self.write(|tx| {
            Ok(tx
                .execute("UPDATE images SET missing = 1, updated_at = ?2 WHERE path = ?1", params![text, now_secs()])?
                > 0)
        })
    }

    /// The row at `path`, if any.
    pub fn image_by_path(&self, path: &Path) -> Result<Option<ImageRow>, StoreError> {
        let text = path_text(path);
        let sql = format!("SELECT {IMAGE_COLUMNS} FROM images WHERE path = ?1");
        self.conn.query_row(&sql, [text.as_ref()], image_row).optional().map_err(self.err())
    }

    /// Records a batch of one model's scores in one transaction, with what the model saw of each
    /// prompt, so every prompt that tokenises alike finds them.
    pub fn record_scores(&mut self, model_id: &str, rows: &[ScoreRow]) -> Result<(), StoreError> {
        self.write(|tx| {
            let now = now_secs();
            let mut seen = std::collections::HashSet::new();
            for row in rows {
                if seen.insert(row.prompt) {
                    record_prompt_tokens_tx(tx, model_id, row.prompt, row.tokens, row.truncated)?;
                }
                tx.prepare_cached(
                    "INSERT INTO scores (content_hash, model_id, token_key, value, scored_at)
                     VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT(content_hash, model_id, token_key) DO UPDATE SET value = ?4, scored_at = ?5",
                )?
                .execute(params![row.content_hash, model_id, row.tokens.0, row.value, now])?;
            }
            Ok(())
        })
    }

    /// The stored score of this content for what the model sees of a prompt, so nothing is scored
    /// twice (a prompt differing only in case or spacing finds it too).
    pub fn score(
        &self,
        content_hash: &ContentHash,
        model_id: &str,
        tokens: TokenKey,
    ) -> Result<Option<f64>, StoreError> {
        self.conn
            .prepare_cached("SELECT value FROM scores WHERE content_hash = ?1 AND model_id = ?2 AND token_key = ?3")
            .and_then(|mut stmt| stmt.query_row(params![content_hash, model_id, tokens.0], |r| r.get(0)).optional())
            .map_err(self.err())
    }

    /// Remembers how a model tokenises prompts (text, key, whether it was cut at 35 tokens), so
    /// views can join images' own prompts to scores and flag truncated prompts.
    pub fn record_prompt_tokens(&mut self, model_id: &str, rows: &[(&str, TokenKey, bool)]) -> Result<(), StoreError> {
        self.write(|tx| {
            for (prompt, tokens, truncated) in rows {
                record_prompt_tokens_tx(tx, model_id, prompt, *tokens, *truncated)?;
            }
            Ok(())
        })
    }

    /// Up to `limit` prompts of the library that `model_id` has not tokenised yet.
    pub fn prompts_without_tokens(&self, model_id: &str, limit: usize) -> Result<Vec<String>, StoreError> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT p.text FROM prompts p
                 WHERE NOT EXISTS (SELECT 1 FROM prompt_tokens t WHERE t.model_id = ?1 AND t.prompt_id = p.id)
                 LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![model_id, i64::try_from(limit).unwrap_or(i64::MAX)], |r| r.get(0))?;
            rows.collect()
        })
    }

    /// Scores stored before schema v2 (keyed by raw prompt text) for `model_id`, up to `limit`:
    /// the model's tokenizer turns them into keyed scores with [`Store::rekey_legacy_scores`].
    pub fn legacy_scores(&self, model_id: &str, limit: usize) -> Result<Vec<LegacyScore>, StoreError> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT content_hash, prompt, value, scored_at FROM legacy_scores WHERE model_id = ?1 LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![model_id, i64::try_from(limit).unwrap_or(i64::MAX)], |r| {
                Ok(LegacyScore { content_hash: r.get(0)?, prompt: r.get(1)?, value: r.get(2)?, scored_at: r.get(3)? })
            })?;
            rows.collect()
        })
    }

    /// Moves legacy scores of `model_id` to the keyed table, each with its prompt's tokens; a
    /// score already stored under the key is kept (it is newer). One transaction: a crash leaves
    /// every score in one table or the other.
    pub fn rekey_legacy_scores(
        &mut self,
        model_id: &str,
        rows: &[(LegacyScore, TokenKey, bool)],
    ) -> Result<(), StoreError> {
        self.write(|tx| {
            for (legacy, tokens, truncated) in rows {
                record_prompt_tokens_tx(tx, model_id, &legacy.prompt, *tokens, *truncated)?;
                tx.prepare_cached(
                    "INSERT OR IGNORE INTO scores (content_hash, model_id, token_key, value, scored_at)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )?
                .execute(params![
                    legacy.content_hash,
                    model_id,
                    tokens.0,
                    legacy.value,
                    legacy.scored_at
                ])?;
                tx.prepare_cached(
                    "DELETE FROM legacy_scores WHERE content_hash = ?1 AND model_id = ?2 AND prompt = ?3",
                )?
                .execute(params![legacy.content_hash, model_id, legacy.prompt])?;
            }
            Ok(())
        })
    }

    /// The model the library was last scored with: whose rewards views show by default.
    pub fn last_model_id(&self) -> Result<Option<String>, StoreError> {
        self.meta(LAST_MODEL_KEY)
    }

    /// Records the model now scoring the library.
    pub fn set_last_model_id(&mut self, model_id: &str) -> Result<(), StoreError> {
        self.set_meta(LAST_MODEL_KEY, model_id)
    }

    /// A small named setting of the library (the last model used, …).
    pub fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.read(|c| c.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0)).optional())
    }

    /// Sets a small named setting of the library.
    pub fn set_meta(&mut self, key: &str, value: &str) -> Result<(), StoreError> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = ?2",
                params![key, value],
            )
            .map(|_| ())
        })
    }

    /// How many scores a model has stored (for progress and tests).
    pub fn scored_count(&self, model_id: &str) -> Result<i64, StoreError> {
        self.read(|c| c.query_row("SELECT count(*) FROM scores WHERE model_id = ?1", [model_id], |r| r.get(0)))
    }

    /// SQLite's own consistency check: `"ok"` for a whole database.
    pub fn integrity_check(&self) -> Result<String, StoreError> {
        self.read(|c| c.query_row("PRAGMA integrity_check", [], |r| r.get(0)))
    }

    /// Sets the user's ratings of the image with this content.
    pub fn set_rating(&mut self, content_hash: &ContentHash, rating: Rating) -> Result<(), StoreError> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO ratings (content_hash, overall, alignment, fidelity, updated_at) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(content_hash) DO UPDATE SET overall = ?2, alignment = ?3, fidelity = ?4, updated_at = ?5",
                params![content_hash, rating.overall, rating.alignment, rating.fidelity, now_secs()],
            )
            .map(|_| ())
        })
    }

    /// Sets only the overall rating (a 1–5 key in the grid), keeping the alignment and fidelity
    /// ratings the preference tools may have recorded; `None` clears it.
    pub fn set_overall_rating(&mut self, content_hash: &ContentHash, overall: Option<u8>) -> Result<(), StoreError> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO ratings (content_hash, overall, updated_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT(content_hash) DO UPDATE SET overall = ?2, updated_at = ?3",
                params![content_hash, overall, now_secs()],
            )
            .map(|_| ())
        })
    }

    /// The user's ratings of the image with this content.
    pub fn rating(&self, content_hash: &ContentHash) -> Result<Option<Rating>, StoreError> {
        self.conn
            .query_row(
                "SELECT overall, alignment, fidelity FROM ratings WHERE content_hash = ?1",
                [content_hash],
                |r| Ok(Rating { overall: r.get(0)?, alignment: r.get(1)?, fidelity: r.get(2)? }),
            )
            .optional()
            .map_err(self.err())
    }

    /// Marks the image with this content as a favorite.
    pub fn add_favorite(&mut self, content_hash: &ContentHash) -> Result<(), StoreError> {
        self.write(|tx| {
            tx.execute(
                "INSERT OR IGNORE INTO favorites (content_hash, added_at) VALUES (?1, ?2)",
                params![content_hash, now_secs()],
            )
            .map(|_| ())
        })
    }

    /// Whether the image with this content is a favorite.
    pub fn is_favorite(&self, content_hash: &ContentHash) -> Result<bool, StoreError> {
        self.conn
            .query_row("SELECT 1 FROM favorites WHERE content_hash = ?1", [content_hash], |_| Ok(()))
            .optional()
            .map(|o| o.is_some())
            .map_err(self.err())
    }

    /// Records that the user preferred one image over another for a prompt (or called a tie).
    pub fn add_comparison(
        &mut self,
        prompt: &str,
        winner_hash: &ContentHash,
        loser_hash: &ContentHash,
        tie: bool,
    ) -> Result<i64, StoreError> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO comparisons (prompt, winner_hash, loser_hash, tie, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![prompt, winner_hash, loser_hash, tie, now_secs()],
            )?;
            Ok(tx.last_insert_rowid())
        })
    }

    /// How many comparisons involve this content, for checking user data survives.
    pub fn comparison_count(&self, content_hash: &ContentHash) -> Result<u64, StoreError> {
        self.conn
            .query_row(
                "SELECT COUNT(*) FROM comparisons WHERE winner_hash = ?1 OR loser_hash = ?1",
                [content_hash],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| u64::try_from(n).unwrap_or(0))
            .map_err(self.err())
    }

    /// Unmarks the image with this content as a favorite (the user changed their mind); returns
    /// whether it was one.
    pub fn remove_favorite(&mut self, content_hash: &ContentHash) -> Result<bool, StoreError> {
        self.write(|tx| Ok(tx.execute("DELETE FROM favorites WHERE content_hash = ?1", [content_hash])? > 0))
    }

    /// Inserts or updates many rows in one transaction (a bulk import: one commit instead of one
    /// per image) and returns their ids in order.
    pub fn upsert_images(&mut self, records: &[ImageRecord]) -> Result<Vec<i64>, StoreError> {
        self.write(|tx| records.iter().map(|record| upsert_image_tx(tx, record)).collect())
    }
}

/// Interns a prompt text (with its group key) and returns its id.
pub(crate) fn intern_prompt_tx(tx: &Transaction, text: &str) -> rusqlite::Result<i64> {
    tx.prepare_cached("INSERT OR IGNORE INTO prompts (text, group_key) VALUES (?1, ?2)")?
        .execute(params![text, prompt_group_key(text)])?;
    tx.prepare_cached("SELECT id FROM prompts WHERE text = ?1")?.query_row([text], |r| r.get(0))
}

/// Records how `model_id` tokenises `prompt`.
fn record_prompt_tokens_tx(
    tx: &Transaction,
    model_id: &str,
    prompt: &str,
    tokens: TokenKey,
    truncated: bool,
) -> rusqlite::Result<()> {
    let prompt_id = intern_prompt_tx(tx, prompt)?;
    tx.prepare_cached(
        "INSERT INTO prompt_tokens (model_id, prompt_id, token_key, truncated) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT(model_id, prompt_id) DO UPDATE SET token_key = ?3, truncated = ?4",
    )?
    .execute(params![model_id, prompt_id, tokens.0, truncated])?;
    Ok(())
}

/// Columns of an `images` row in the order [`image_row`] reads them.
pub(crate) const IMAGE_COLUMNS: &str = "id, folder_id, path, content_hash, size, mtime_ns, width, height, format, \
     generator, prompt, negative_prompt, params_json, prompt_key, missing, error, checkpoint, checkpoint_hash, \
     sampler, seed";

fn image_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ImageRow> {
    Ok(ImageRow {
        id: r.get(0)?,
        record: ImageRecord {
            folder_id: r.get(1)?,
            path: path_from_text(&r.get::<_, String>(2)?),
            content_hash: r.get(3)?,
            size: u64::try_from(r.get::<_, i64>(4)?).unwrap_or(0),
            mtime_ns: r.get(5)?,
            width: r.get(6)?,
            height: r.get(7)?,
            format: r.get(8)?,
            generator: r.get(9)?,
            prompt: r.get(10)?,
            negative_prompt: r.get(11)?,
            params_json: r.get(12)?,
            prompt_key: r.get(13)?,
            error: r.get(15)?,
            checkpoint: r.get(16)?,
            checkpoint_hash: r.get(17)?,
            sampler: r.get(18)?,
            seed: r.get(19)?,
        },
        missing: r.get(14)?,
    })
}

/// Inserts or updates by path inside a caller's transaction; returns the row id.
/// The caller has checked that the path is UTF-8.
pub(crate) fn upsert_image_tx(tx: &Transaction, rec: &ImageRecord) -> rusqlite::Result<i64> {
    let now = now_secs();
    let prompt_id = rec.prompt.as_deref().map(|p| intern_prompt_tx(tx, p)).transpose()?;
    tx.prepare_cached(
        "INSERT INTO images (folder_id, path, content_hash, size, mtime_ns, width, height, format, generator,
             prompt, negative_prompt, params_json, prompt_key, missing, error, added_at, updated_at,
             prompt_id, checkpoint, checkpoint_hash, sampler, seed)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, 0, ?14, ?15, ?15, ?16, ?17, ?18, ?19, ?20)
         ON CONFLICT(path) DO UPDATE SET folder_id = ?1, content_hash = ?3, size = ?4, mtime_ns = ?5,
             width = ?6, height = ?7, format = ?8, generator = ?9, prompt = ?10, negative_prompt = ?11,
             params_json = ?12, prompt_key = ?13, missing = 0, error = ?14, updated_at = ?15,
             prompt_id = ?16, checkpoint = ?17, checkpoint_hash = ?18, sampler = ?19, seed = ?20
         RETURNING id",
    )?
    .query_row(
        params![
            rec.folder_id,
            path_text(&rec.path),
            rec.content_hash,
            i64::try_from(rec.size).unwrap_or(i64::MAX),
            rec.mtime_ns,
            rec.width,
            rec.height,
            rec.format,
            rec.generator,
            rec.prompt,
            rec.negative_prompt,
            rec.params_json,
            rec.prompt_key,
            rec.error,
            now,
            prompt_id,
            rec.checkpoint,
            rec.checkpoint_hash,
            rec.sampler,
            rec.seed
        ],
        |r| r.get(0),
    )
}

/// Moves the row `id` to the record's path and contents (a renamed or moved file), keeping the
/// id so everything referring to it follows: re-point the row, then update it like any other.
pub(crate) fn move_image_tx(tx: &Transaction, id: i64, rec: &ImageRecord) -> rusqlite::Result<()> {
    tx.prepare_cached("UPDATE images SET path = ?2 WHERE id = ?1")?.execute(params![id, path_text(&rec.path)])?;
    upsert_image_tx(tx, rec).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(seed: &str) -> ContentHash {
        ContentHash::of(seed.as_bytes())
    }

    /// What the bundled tokenizer makes of a prompt: its key and whether it was cut.
    pub(crate) fn tokens(prompt: &str) -> (TokenKey, bool) {
        let t = crate::model::PromptTokenizer::bundled().unwrap().encode(prompt).unwrap();
        (t.key(), t.truncated)
    }

    /// Records one score keyed as the bundled tokenizer reads `prompt`.
    pub(crate) fn put_score(store: &mut Store, hash: &ContentHash, model_id: &str, prompt: &str, value: f64) {
        let (tokens, truncated) = tokens(prompt);
        store.record_scores(model_id, &[ScoreRow { content_hash: hash, prompt, tokens, truncated, value }]).unwrap();
    }

    fn record(path: &str, hash: &str) -> ImageRecord {
        ImageRecord {
            path: PathBuf::from(path),
            content_hash: Some(h(hash)),
            size: 10,
            mtime_ns: 1,
            prompt_key: Some("a cat".to_string()),
            ..ImageRecord::default()
        }
    }

    #[test]
    fn stored_path_text_gives_the_exact_path_back() {
        for text in ["/a/猫.png", "/a/100%.png", "C:\\x\\y.png"] {
            assert_eq!(path_text(Path::new(text)), text, "UTF-8 paths are stored as they are");
            assert_eq!(path_from_text(text), Path::new(text));
        }
        #[cfg(unix)]
        {
            use std::os::unix::ffi::OsStrExt;
            for bytes in [&b"/a/b\xffc%41.png"[..], b"/\xe9%", b"/\x80\x80%25%"] {
                let path = Path::new(std::ffi::OsStr::from_bytes(bytes));
                let text = path_text(path);
                assert!(text.starts_with(RAW_PATH_MARK), "{text:?}");
                assert_eq!(path_from_text(&text).as_os_str().as_bytes(), bytes, "{text:?}");
            }
        }
    }

    #[test]
    fn a_background_connection_maps_nothing_and_keeps_a_small_cache() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lib.sqlite3");
        let pragma = |store: &Store, name: &str| -> i64 {
            store.conn.query_row(&format!("PRAGMA {name}"), [], |r| r.get(0)).unwrap()
        };
        let views = Store::open(&path).unwrap();
        assert_eq!((pragma(&views, "cache_size"), pragma(&views, "mmap_size")), (-65536, 268_435_456));
        let background = Store::open_background(&path).unwrap();
        assert_eq!((pragma(&background, "cache_size"), pragma(&background, "mmap_size")), (-8192, 0));
        assert_eq!(background.user_version().unwrap(), SCHEMA_VERSION);
    }

    #[test]
    fn migrates_an_empty_database_from_version_zero() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("lib.sqlite3");
        {
            let conn = Connection::open(dir.path().join("empty.sqlite3")).unwrap();
            assert_eq!(conn.query_row("PRAGMA user_version", [], |r| r.get::<_, u32>(0)).unwrap(), 0);
        }
        let store = Store::open(&dir.path().join("empty.sqlite3")).unwrap();
        assert_eq!(store.user_version().unwrap(), SCHEMA_VERSION);
        let store = Store::open(&path).unwrap();
        assert_eq!(store.user_version().unwrap(), SCHEMA_VERSION);
        let mode: String = store.conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
        assert_eq!(mode, "wal");
        drop(store);
        // Reopening runs no migration and keeps the version.
        assert_eq!(Store::open(&path).unwrap().user_version().unwrap(), SCHEMA_VERSION);
    }

    #[test]
    fn refuses_a_database_from_a_newer_version_and_leaves_it_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("future.sqlite3");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch("CREATE TABLE future (x); PRAGMA user_version = 99;").unwrap();
        }
        let before = std::fs::read(&path).unwrap();
        let err = Store::open(&path).unwrap_err();
        assert!(matches!(err, StoreError::TooNew { found: 99, .. }), "{err}");
        assert!(err.to_string().contains("future.sqlite3"), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), before);
    }

    #[test]
    fn two_stores_writing_concurrently_never_see_database_is_locked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lib.sqlite3");
        Store::open(&path).unwrap();
        let workers: Vec<_> = (0..2)
            .map(|t| {
                let path = path.clone();
                std::thread::Builder::new()
                    .name(format!("store-test-{t}"))
                    .spawn(move || {
                        let mut store = Store::open(&path).unwrap();
                        for i in 0..200 {
                            let rec = record(&format!("/t{t}/{i}.png"), &format!("h{t}-{i}"));
                            store.upsert_image(&rec).unwrap();
                            put_score(&mut store, &h(&format!("h{t}-{i}")), "m", "p", f64::from(i));
                        }
                    })
                    .unwrap()
            })
            .collect();
        for w in workers {
            w.join().unwrap();
        }
        let store = Store::open(&path).unwrap();
        assert_eq!(store.view(&crate::library::views::ViewQuery::default()).unwrap().len(), 400);
    }

    #[test]
    fn user_data_keyed_by_hash_survives_removing_and_re_adding_rows() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("lib.sqlite3")).unwrap();
        let folder = Path::new("/photos");
        let folder_id = store.add_folder(folder).unwrap();
        let rec = ImageRecord { folder_id: Some(folder_id), ..record("/photos/a.png", "abc") };
        store.upsert_image(&rec).unwrap();
        let rating = Rating { overall: Some(6), alignment: None, fidelity: Some(2) };
        store.set_rating(&h("abc"), rating).unwrap();
        store.add_favorite(&h("abc")).unwrap();
        store.add_comparison("a cat", &h("abc"), &h("def"), false).unwrap();
        put_score(&mut store, &h("abc"), "ir-v1", "a cat", 1.5);

        assert!(store.remove_folder(folder).unwrap());
        assert!(store.image_by_path(&rec.path).unwrap().is_none());
        assert!(store.folders().unwrap().is_empty());

        let folder_id = store.add_folder(folder).unwrap();
        store.upsert_image(&ImageRecord { folder_id: Some(folder_id), ..rec.clone() }).unwrap();
        assert_eq!(store.rating(&h("abc")).unwrap(), Some(rating));
        assert!(store.is_favorite(&h("abc")).unwrap());
        assert_eq!(store.comparison_count(&h("abc")).unwrap(), 1);
        assert_eq!(store.score(&h("abc"), "ir-v1", tokens("a cat").0).unwrap(), Some(1.5));
        // What the model reads alike shares the score.
        assert_eq!(store.score(&h("abc"), "ir-v1", tokens("  A CAT ").0).unwrap(), Some(1.5));
    }

    #[test]
    fn mark_missing_hides_a_row_from_views_and_upsert_brings_it_back() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("lib.sqlite3")).unwrap();
        let rec = record("/a.png", "abc");
        let id = store.upsert_image(&rec).unwrap();
        assert!(store.mark_missing(&rec.path).unwrap());
        assert!(store.image_by_path(&rec.path).unwrap().unwrap().missing);
        assert!(store.view(&crate::library::views::ViewQuery::default()).unwrap().is_empty());
        assert_eq!(store.upsert_image(&rec).unwrap(), id);
        assert!(!store.image_by_path(&rec.path).unwrap().unwrap().missing);
    }

    #[test]
    fn a_v1_database_migrates_keeping_every_score_rating_comparison_and_favorite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v1.sqlite3");
        let (a, b) = (h("a"), h("b"));
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(MIGRATIONS[0]).unwrap();
            conn.pragma_update(None, "user_version", 1).unwrap();
            let params_json = r#"{"generator":"a1111","prompt":"A Cat","model":"dreamshaper_8","model_hash":"879db523c3",
                "sampler":"Euler a","seed":42,"settings":{},"raw":""}"#;
            conn.execute(
                "INSERT INTO images (path, content_hash, size, mtime_ns, prompt, prompt_key, params_json, generator,
                     added_at, updated_at) VALUES ('/x/a.png', ?1, 1, 1, 'A Cat', 'a cat', ?2, 'a1111', 0, 0)",
                params![a, params_json],
            )
            .unwrap();
            conn.execute(
                "INSERT INTO images (path, content_hash, size, mtime_ns, prompt, prompt_key, params_json, added_at,
                     updated_at) VALUES ('/x/b.png', ?1, 1, 1, 'a  cat', 'a cat', '{not json', 0, 0)",
                [&b],
            )
            .unwrap();
            conn.execute(
                "INSERT INTO scores VALUES (?1, 'm', 'A Cat', 1.25, 7), (?2, 'm', 'a  cat', -0.5, 8), (?1, 'other', 'x', 3.0, 9)",
                params![a, b],
            )
            .unwrap();
            conn.execute("INSERT INTO ratings VALUES (?1, 6, 5, 4, 1)", [&a]).unwrap();
            conn.execute("INSERT INTO comparisons (prompt, winner_hash, loser_hash, tie, created_at) VALUES ('a cat', ?1, ?2, 0, 1)", [&a, &b]).unwrap();
            conn.execute("INSERT INTO favorites VALUES (?1, 1)", [&b]).unwrap();
        }
        let mut store = Store::open(&path).unwrap();
        assert_eq!(store.user_version().unwrap(), SCHEMA_VERSION);
        // User data untouched.
        assert_eq!(store.rating(&a).unwrap(), Some(Rating { overall: Some(6), alignment: Some(5), fidelity: Some(4) }));
        assert_eq!(store.comparison_count(&b).unwrap(), 1);
        assert!(store.is_favorite(&b).unwrap());
        // Parameters became columns (and damaged JSON was left alone).
        let row = store.image_by_path(Path::new("/x/a.png")).unwrap().unwrap();
        assert_eq!(row.record.checkpoint.as_deref(), Some("dreamshaper_8"));
        assert_eq!(row.record.checkpoint_hash.as_deref(), Some("879db523c3"));
        assert_eq!((row.record.sampler.as_deref(), row.record.seed), (Some("Euler a"), Some(42)));
        assert_eq!(store.image_by_path(Path::new("/x/b.png")).unwrap().unwrap().record.checkpoint, None);
        // Scores wait, keyed by text, until a model's tokenizer re-keys them; none is lost.
        let legacy = store.legacy_scores("m", 10).unwrap();
        assert_eq!(legacy.len(), 2);
        assert_eq!(store.legacy_scores("other", 10).unwrap().len(), 1);
        let rows: Vec<_> = legacy
            .into_iter()
            .map(|l| {
                let (k, t) = tokens(&l.prompt);
                (l, k, t)
            })
            .collect();
        store.rekey_legacy_scores("m", &rows).unwrap();
        assert!(store.legacy_scores("m", 10).unwrap().is_empty());
        assert_eq!(store.score(&a, "m", tokens("a cat").0).unwrap(), Some(1.25));
        assert_eq!(store.score(&b, "m", tokens("A CAT").0).unwrap(), Some(-0.5));
        assert_eq!(store.legacy_scores("other", 10).unwrap().len(), 1, "another model's scores wait for it");
    }
}
