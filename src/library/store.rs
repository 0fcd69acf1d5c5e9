//! The SQLite store behind the library: watched folders, image rows, scores, and the user's
//! ratings, comparisons and favorites.
//!
//! User data is keyed by content hash, never by path or row id, so it survives moves, renames and
//! a folder being removed and added again. WAL mode, a busy timeout and short `IMMEDIATE`
//! transactions let two processes share one file without "database is locked".

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::types::Value;

use crate::image_file::ContentHash;
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params, params_from_iter};

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
];

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
    /// A path cannot be stored because it is not valid UTF-8.
    #[error("path {path} is not valid UTF-8 and cannot be stored")]
    NonUtf8Path {
        /// The path.
        path: PathBuf,
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

/// Which images a page shows.
#[derive(Debug, Clone, PartialEq)]
pub enum ImageFilter {
    /// Every present image.
    All,
    /// Images whose prompt group key equals this.
    PromptKey(String),
    /// Images under this watched folder id.
    Folder(i64),
}

/// How a page is sorted.
#[derive(Debug, Clone, PartialEq)]
pub enum ImageOrder {
    /// By path, for a stable browse order.
    Path,
    /// Best score first for this model and prompt; unscored images last, then by path.
    BestScore {
        /// Scorer id.
        model_id: String,
        /// Prompt the scores were computed for.
        prompt: String,
    },
}

/// One row of a page: the image and its score under the requested order, if any.
#[derive(Debug, Clone, PartialEq)]
pub struct PageRow {
    /// The image.
    pub image: ImageRow,
    /// Its score for the page's model and prompt.
    pub score: Option<f64>,
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

/// A path as stored text.
pub(crate) fn path_text(path: &Path) -> Result<&str, StoreError> {
    path.to_str().ok_or_else(|| StoreError::NonUtf8Path { path: path.to_path_buf() })
}

impl Store {
    /// Opens (creating and migrating as needed) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
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
        let text = path_text(path)?.to_string();
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
        let text = path_text(path)?.to_string();
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
                    path: PathBuf::from(r.get::<_, String>(1)?),
                    present: r.get(2)?,
                    last_scan_at: r.get(3)?,
                })
            })
            .map_err(self.err())?;
        rows.collect::<Result<_, _>>().map_err(self.err())
    }

    /// Inserts or updates the row for `record.path` (clearing `missing`) and returns its id.
    pub fn upsert_image(&mut self, record: &ImageRecord) -> Result<i64, StoreError> {
        path_text(&record.path)?;
        self.write(|tx| upsert_image_tx(tx, record))
    }

    /// Marks the row at `path` missing (the file is gone; the row and its user data stay).
    pub fn mark_missing(&mut self, path: &Path) -> Result<bool, StoreError> {
        let text = path_text(path)?.to_string();
        self.write(|tx| {
            Ok(tx
                .execute("UPDATE images SET missing = 1, updated_at = ?2 WHERE path = ?1", params![text, now_secs()])?
                > 0)
        })
    }

    /// The row at `path`, if any.
    pub fn image_by_path(&self, path: &Path) -> Result<Option<ImageRow>, StoreError> {
        let text = path_text(path)?;
        let sql = format!("SELECT {IMAGE_COLUMNS} FROM images WHERE path = ?1");
        self.conn.query_row(&sql, [text], image_row).optional().map_err(self.err())
    }

    /// Records a score for (content hash, model, prompt), replacing an older one.
    pub fn record_score(
        &mut self,
        content_hash: &ContentHash,
        model_id: &str,
        prompt: &str,
        value: f64,
    ) -> Result<(), StoreError> {
        self.record_scores(model_id, &[(content_hash, prompt, value)])
    }

    /// Records a batch of `(content hash, prompt, value)` scores of one model in one transaction.
    pub fn record_scores(&mut self, model_id: &str, rows: &[(&ContentHash, &str, f64)]) -> Result<(), StoreError> {
        self.write(|tx| {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO scores (content_hash, model_id, prompt, value, scored_at) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(content_hash, model_id, prompt) DO UPDATE SET value = ?4, scored_at = ?5",
            )?;
            let now = now_secs();
            for (hash, prompt, value) in rows {
                stmt.execute(params![hash, model_id, prompt, value, now])?;
            }
            Ok(())
        })
    }

    /// The stored score for (content hash, model, prompt), so nothing is scored twice.
    pub fn score(&self, content_hash: &ContentHash, model_id: &str, prompt: &str) -> Result<Option<f64>, StoreError> {
        self.conn
            .query_row(
                "SELECT value FROM scores WHERE content_hash = ?1 AND model_id = ?2 AND prompt = ?3",
                params![content_hash, model_id, prompt],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.err())
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

    /// One page of present (not missing) images, filtered and ordered as asked; the grid asks
    /// only for the rows it shows.
    pub fn images_page(
        &self,
        filter: &ImageFilter,
        order: &ImageOrder,
        offset: u64,
        limit: u64,
    ) -> Result<Vec<PageRow>, StoreError> {
        let mut args: Vec<Value> = Vec::new();
        let (score_col, join, order_by) = match order {
            ImageOrder::Path => ("NULL", String::new(), "i.path"),
            ImageOrder::BestScore { model_id, prompt } => {
                args.push(Value::Text(model_id.clone()));
                args.push(Value::Text(prompt.clone()));
                (
                    "s.value",
                    "LEFT JOIN scores s ON s.content_hash = i.content_hash AND s.model_id = ?1 AND s.prompt = ?2"
                        .to_string(),
                    "s.value IS NULL, s.value DESC, i.path",
                )
            }
        };
        let filter_sql = match filter {
            ImageFilter::All => String::new(),
            ImageFilter::PromptKey(key) => {
                args.push(Value::Text(key.clone()));
                format!(" AND i.prompt_key = ?{}", args.len())
            }
            ImageFilter::Folder(id) => {
                args.push(Value::Integer(*id));
                format!(" AND i.folder_id = ?{}", args.len())
            }
        };
        args.push(Value::Integer(i64::try_from(limit).unwrap_or(i64::MAX)));
        let limit_ix = args.len();
        args.push(Value::Integer(i64::try_from(offset).unwrap_or(i64::MAX)));
        let offset_ix = args.len();
        let columns = IMAGE_COLUMNS.split(", ").map(|c| format!("i.{c}")).collect::<Vec<_>>().join(", ");
        let sql = format!(
            "SELECT {columns}, {score_col} FROM images i {join} WHERE i.missing = 0{filter_sql} \
             ORDER BY {order_by} LIMIT ?{limit_ix} OFFSET ?{offset_ix}"
        );
        let mut stmt = self.conn.prepare_cached(&sql).map_err(self.err())?;
        let rows = stmt
            .query_map(params_from_iter(args), |r| {
                Ok(PageRow { image: image_row(r)?, score: r.get(IMAGE_COLUMN_COUNT)? })
            })
            .map_err(self.err())?;
        rows.collect::<Result<_, _>>().map_err(self.err())
    }
}

/// Columns of an `images` row in the order [`image_row`] reads them.
pub(crate) const IMAGE_COLUMNS: &str = "id, folder_id, path, content_hash, size, mtime_ns, width, height, format, \
     generator, prompt, negative_prompt, params_json, prompt_key, missing, error";
const IMAGE_COLUMN_COUNT: usize = 16;

fn image_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ImageRow> {
    Ok(ImageRow {
        id: r.get(0)?,
        record: ImageRecord {
            folder_id: r.get(1)?,
            path: PathBuf::from(r.get::<_, String>(2)?),
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
        },
        missing: r.get(14)?,
    })
}

/// Inserts or updates by path inside a caller's transaction; returns the row id.
/// The caller has checked that the path is UTF-8.
pub(crate) fn upsert_image_tx(tx: &Transaction, rec: &ImageRecord) -> rusqlite::Result<i64> {
    let now = now_secs();
    tx.prepare_cached(
        "INSERT INTO images (folder_id, path, content_hash, size, mtime_ns, width, height, format, generator,
             prompt, negative_prompt, params_json, prompt_key, missing, error, added_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, 0, ?14, ?15, ?15)
         ON CONFLICT(path) DO UPDATE SET folder_id = ?1, content_hash = ?3, size = ?4, mtime_ns = ?5,
             width = ?6, height = ?7, format = ?8, generator = ?9, prompt = ?10, negative_prompt = ?11,
             params_json = ?12, prompt_key = ?13, missing = 0, error = ?14, updated_at = ?15
         RETURNING id",
    )?
    .query_row(
        params![
            rec.folder_id,
            rec.path.to_string_lossy(),
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
            now
        ],
        |r| r.get(0),
    )
}

/// Moves the row `id` to the record's path and contents (a renamed or moved file), keeping the
/// id so everything referring to it follows: re-point the row, then update it like any other.
pub(crate) fn move_image_tx(tx: &Transaction, id: i64, rec: &ImageRecord) -> rusqlite::Result<()> {
    tx.prepare_cached("UPDATE images SET path = ?2 WHERE id = ?1")?.execute(params![id, rec.path.to_string_lossy()])?;
    upsert_image_tx(tx, rec).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(seed: &str) -> ContentHash {
        ContentHash::of(seed.as_bytes())
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
                            store.record_score(&h(&format!("h{t}-{i}")), "m", "p", f64::from(i)).unwrap();
                        }
                    })
                    .unwrap()
            })
            .collect();
        for w in workers {
            w.join().unwrap();
        }
        let store = Store::open(&path).unwrap();
        let page = store.images_page(&ImageFilter::All, &ImageOrder::Path, 0, 1000).unwrap();
        assert_eq!(page.len(), 400);
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
        store.record_score(&h("abc"), "ir-v1", "a cat", 1.5).unwrap();

        assert!(store.remove_folder(folder).unwrap());
        assert!(store.image_by_path(&rec.path).unwrap().is_none());
        assert!(store.folders().unwrap().is_empty());

        let folder_id = store.add_folder(folder).unwrap();
        store.upsert_image(&ImageRecord { folder_id: Some(folder_id), ..rec.clone() }).unwrap();
        assert_eq!(store.rating(&h("abc")).unwrap(), Some(rating));
        assert!(store.is_favorite(&h("abc")).unwrap());
        assert_eq!(store.comparison_count(&h("abc")).unwrap(), 1);
        assert_eq!(store.score(&h("abc"), "ir-v1", "a cat").unwrap(), Some(1.5));
    }

    #[test]
    fn mark_missing_hides_a_row_from_pages_and_upsert_brings_it_back() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("lib.sqlite3")).unwrap();
        let rec = record("/a.png", "abc");
        let id = store.upsert_image(&rec).unwrap();
        assert!(store.mark_missing(&rec.path).unwrap());
        assert!(store.image_by_path(&rec.path).unwrap().unwrap().missing);
        assert!(store.images_page(&ImageFilter::All, &ImageOrder::Path, 0, 10).unwrap().is_empty());
        assert_eq!(store.upsert_image(&rec).unwrap(), id);
        assert!(!store.image_by_path(&rec.path).unwrap().unwrap().missing);
    }

    #[test]
    fn pages_filter_and_order_by_best_score() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("lib.sqlite3")).unwrap();
        let folder_id = store.add_folder(Path::new("/f")).unwrap();
        for (name, hash, key) in [("/f/a.png", "ha", "cat"), ("/f/b.png", "hb", "cat"), ("/g/c.png", "hc", "dog")] {
            let folder_id = name.starts_with("/f").then_some(folder_id);
            store.upsert_image(&ImageRecord { folder_id, prompt_key: Some(key.into()), ..record(name, hash) }).unwrap();
        }
        store.record_score(&h("hb"), "m", "cat", 2.0).unwrap();
        store.record_score(&h("ha"), "m", "cat", 1.0).unwrap();
        store.record_score(&h("hc"), "m", "cat", 9.0).unwrap();
        store.record_score(&h("hc"), "other", "cat", 99.0).unwrap();
        let order = ImageOrder::BestScore { model_id: "m".into(), prompt: "cat".into() };
        let page = store.images_page(&ImageFilter::PromptKey("cat".into()), &order, 0, 10).unwrap();
        let got: Vec<_> = page.iter().map(|r| (r.image.record.path.clone(), r.score)).collect();
        assert_eq!(got, vec![(PathBuf::from("/f/b.png"), Some(2.0)), (PathBuf::from("/f/a.png"), Some(1.0))]);
        let page = store.images_page(&ImageFilter::All, &order, 1, 1).unwrap();
        assert_eq!(page[0].image.record.path, PathBuf::from("/f/b.png"));
        let page = store.images_page(&ImageFilter::Folder(folder_id), &ImageOrder::Path, 0, 10).unwrap();
        assert_eq!(page.len(), 2);
        assert_eq!(page[0].score, None);
    }
}
