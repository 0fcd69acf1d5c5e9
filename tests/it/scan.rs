//! `rewardlens scan` end to end: a folder imported, then rescanned without reading anything.

use std::process::Output;

fn rewardlens(args: &[&str]) -> Output {
    crate::util::rewardlens_command().args(args).output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn scan_imports_a_folder_then_rescans_it_unchanged_and_reports_bad_files() {
    let tmp = tempfile::tempdir().unwrap();
    let images = tmp.path().join("images");
    std::fs::create_dir(&images).unwrap();
    rewardlens::library::scan::write_synthetic_pngs(&images, 5).unwrap();
    std::fs::write(images.join("broken.png"), b"not a png").unwrap();
    let db = tmp.path().join("lib.sqlite3");
    let (db, folder) = (db.to_str().unwrap(), images.to_str().unwrap());

    let out = rewardlens(&["scan", "--db", db, folder]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("seen 6, unchanged 0, added 6,"), "{stdout}");
    assert!(stdout.contains("errors 1"), "{stdout}");
    assert!(stdout.contains("images/s"), "{stdout}");
    assert!(text(&out.stderr).contains("broken.png"), "{}", text(&out.stderr));

    let out = rewardlens(&["scan", "--db", db, folder]);
    let stdout = text(&out.stdout);
    assert!(stdout.contains("seen 6, unchanged 6, added 0, updated 0, moved 0, missing 0"), "{stdout}");
}

#[test]
fn scan_refuses_a_missing_folder_argument() {
    let out = rewardlens(&["scan"]);
    assert!(!out.status.success());
}
