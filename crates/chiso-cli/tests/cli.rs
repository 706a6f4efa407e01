//! The `chiso` binary as a user runs it.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::path::PathBuf;
use std::process::{Command, Output};

fn chiso(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_chiso"))
        .args(args)
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("chiso-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn gen_help_explains_every_option() {
    let out = chiso(&["gen", "--help"]);
    assert!(out.status.success());
    let help = text(&out.stdout);
    for option in [
        "--seed",
        "--scale",
        "--from",
        "--to",
        "--format",
        "--out",
        "--dirty",
        "--manifest",
        "--dossier-list",
        "--ward",
        "--month",
        "--procedures",
    ] {
        assert!(help.contains(option), "{option} is not explained");
    }
    assert!(help.contains("Examples"));
}

#[test]
fn gen_writes_the_files_and_summarises_the_city() {
    let dir = temp("gen");
    let events = dir.join("nested/city.ndjson");
    let list = dir.join("list.xlsx");
    let out = chiso(&[
        "gen",
        "--scale",
        "0.002",
        "--dirty",
        "--out",
        events.to_str().unwrap(),
        "--dossier-list",
        list.to_str().unwrap(),
        "--month",
        "2025-07",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    for expected in [
        "dossiers received",
        "on-time rate",
        "channels",
        "2025-07",
        "manifest",
        "re",
    ] {
        assert!(
            stdout.contains(expected),
            "summary lacks {expected}:\n{stdout}"
        );
    }
    assert!(events.exists(), "the format follows the extension");
    assert!(
        std::fs::read_to_string(&events)
            .unwrap()
            .starts_with("{\"event_id\"")
    );
    assert!(dir.join("nested/city.ndjson.manifest.json").exists());
    assert!(dir.join("nested/city-late.ndjson").exists());
    assert!(list.exists() && dir.join("list-reexport.xlsx").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_options_get_clear_errors() {
    let cases: [(&[&str], &str); 5] = [
        (&["gen", "--scale", "11"], "--scale 11 is outside"),
        (
            &["gen", "--from", "2025-07-01", "--to", "2025-06-01"],
            "is after --to",
        ),
        (
            &["gen", "--from", "1/7/2025"],
            "is not a date like 2025-07-14",
        ),
        (&["gen", "--format", "xml"], "is not csv, ndjson or parquet"),
        (
            &["gen", "--scale", "0.001", "--out", "/proc/chiso/x.csv"],
            "cannot",
        ),
    ];
    for (args, message) in cases {
        let out = chiso(args);
        assert!(!out.status.success(), "{args:?} succeeded");
        let stderr = text(&out.stderr);
        assert!(stderr.contains(message), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?} panicked");
    }
}

#[test]
fn a_closed_pipe_is_not_a_crash() {
    use std::io::Read;
    use std::process::Stdio;
    let dir = temp("pipe");
    std::fs::create_dir_all(&dir).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_chiso"))
        .args([
            "gen",
            "--scale",
            "0.001",
            "--out",
            dir.join("e.csv").to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(status.success() && !stderr.contains("panicked"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}
