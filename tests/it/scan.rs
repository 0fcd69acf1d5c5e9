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
    rewardlens::synthetic::write_synthetic_pngs(&images, 5).unwrap();
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

#[cfg(unix)]
#[test]
fn scan_watch_imports_new_files_until_ctrl_c() {
    use std::io::Read;
    let tmp = tempfile::tempdir().unwrap();
    let images = tmp.path().join("images");
    let source = tmp.path().join("source");
    std::fs::create_dir(&images).unwrap();
    std::fs::create_dir(&source).unwrap();
    rewardlens::synthetic::write_synthetic_pngs(&images, 2).unwrap();
    rewardlens::synthetic::write_synthetic_pngs(&source, 3).unwrap();
    let db = tmp.path().join("lib.sqlite3");
    let mut child = crate::util::rewardlens_command()
        .args(["scan", "--watch", "--db", db.to_str().unwrap(), images.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let store_has = |name: &str| {
        rewardlens::library::store::Store::open(&db)
            .ok()
            .and_then(|s| s.image_by_path(&images.canonicalize().unwrap().join(name)).ok().flatten())
            .is_some()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !store_has("img_000001.png") && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::fs::copy(source.join("img_000002.png"), images.join("new.png")).unwrap();
    while !store_has("new.png") && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(store_has("new.png"), "the new file was not imported");
    let status = std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    let mut stdout = String::new();
    child.stdout.take().unwrap().read_to_string(&mut stdout).unwrap();
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert!(exit.success(), "{exit:?} {stderr}");
    assert!(stdout.contains("added 2"), "{stdout}");
    assert!(stdout.contains("changed: added 1"), "{stdout}");
    assert!(stderr.contains("stopping"), "{stderr}");
}
