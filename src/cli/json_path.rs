//! File paths in JSON output: a name that is not valid UTF-8 (common after unzipping an archive
//! made elsewhere) must not stop a run, so it is written lossily with its exact bytes beside it.

use std::path::Path;

use serde::Serialize;

/// A path as JSON lines carry it: `path` (U+FFFD where a byte is not UTF-8) and, only then,
/// `path_bytes` with every such byte escaped as `\xNN`, so a script can still find the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JsonPath {
    /// The path as text.
    pub path: String,
    /// The exact bytes, escaped, when the text is not exact.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path_bytes: Option<String>,
}

impl JsonPath {
    /// The JSON form of `path`.
    pub fn new(path: &Path) -> Self {
        match path.to_str() {
            Some(text) => Self { path: text.to_string(), path_bytes: None },
            None => Self { path: path.to_string_lossy().into_owned(), path_bytes: Some(escaped_bytes(path)) },
        }
    }
}

/// The path's bytes with each byte that is not part of valid UTF-8 written as `\xNN` (and `\`
/// itself as `\\`), the rest as text.
fn escaped_bytes(path: &Path) -> String {
    let bytes = path.as_os_str().as_encoded_bytes();
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        out.push_str(&chunk.valid().replace('\\', "\\\\"));
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_paths_are_plain_and_others_carry_their_bytes() {
        let plain = JsonPath::new(Path::new("/a/猫.png"));
        assert_eq!(serde_json::to_string(&plain).unwrap(), r#"{"path":"/a/猫.png"}"#);
        #[cfg(unix)]
        {
            use std::os::unix::ffi::OsStrExt;
            let odd = JsonPath::new(Path::new(std::ffi::OsStr::from_bytes(b"/a/b\xffc\\.png")));
            assert_eq!(odd.path, "/a/b\u{fffd}c\\.png");
            assert_eq!(odd.path_bytes.as_deref(), Some("/a/b\\xffc\\\\.png"));
        }
    }
}
