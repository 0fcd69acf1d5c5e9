//! The layering rule, enforced: `ui` → `scoring`/`library` → `model` → `image_file`, and the headless core never
//! names a GUI crate, so the model, the library and the scorer build and test without a display.

use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`, recursively.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("cannot list {}: {e}", d.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// Whether `word` occurs in `text` as a whole identifier (not inside a longer name).
fn names(text: &str, word: &str) -> bool {
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    text.match_indices(word).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + word.len()..].chars().next();
        !before.is_some_and(is_ident) && !after.is_some_and(is_ident)
    })
}

/// The places in `module` (a folder under src/) that name any of `forbidden`, as "file: name".
fn violations(module: &str, forbidden: &[&str]) -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src").join(module);
    let files = rust_files(&dir);
    assert!(!files.is_empty(), "src/{module} has no Rust files: the layering test would check nothing");
    let mut found = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for word in forbidden {
            if names(&text, word) {
                found.push(format!("{}: {word}", file.display()));
            }
        }
    }
    found
}

const GUI_CRATES: &[&str] = &["egui", "eframe", "winit", "egui_extras", "egui_kittest"];

#[test]
fn the_headless_core_never_names_a_gui_crate() {
    let mut found = Vec::new();
    for module in ["image_file", "model", "library", "scoring"] {
        found.extend(violations(module, GUI_CRATES));
    }
    assert!(found.is_empty(), "GUI crates named in the headless core:\n{}", found.join("\n"));
}

#[test]
fn dependencies_point_one_way() {
    let mut found = violations("image_file", &["crate::model", "crate::library", "crate::scoring", "crate::ui"]);
    found.extend(violations("model", &["crate::library", "crate::scoring", "crate::ui"]));
    found.extend(violations("library", &["crate::scoring", "crate::ui"]));
    found.extend(violations("scoring", &["crate::ui"]));
    assert!(found.is_empty(), "a layer reaches up:\n{}", found.join("\n"));
}

#[test]
fn the_word_check_finds_names_not_substrings() {
    assert!(names("use egui::Context;", "egui"));
    assert!(!names("let my_egui_like = 1;", "egui"));
    assert!(names("crate::library::store", "crate::library"));
    assert!(!names("crate::library_extra", "crate::library"));
}
