//! # chiso-test-support: what the integration tests share
//!
//! Temporary folders removed when a test ends ([`TempDir`]), the built-in
//! sample city in a folder of its own with the clock the tests fix
//! ([`SampleCity`]), and a Python venv with the packages a test drives
//! ([`python_with`]). A dev-dependency only.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

use std::path::{Path, PathBuf};

use chiso_engine::{Engine, EngineOptions};
use chrono::{DateTime, Utc};

/// A folder of its own for one test, removed when it is dropped.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// `$TMP/chiso-{name}-{pid}`, empty.
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("chiso-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a temporary folder");
        Self(dir)
    }

    pub fn root(&self) -> &Path {
        &self.0
    }

    /// A path inside the folder.
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// Writes `bytes` to a file of the folder and returns its path.
    pub fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, bytes).expect("a file in the temporary folder");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The clock the sample city's tests run at: the last day of its year.
pub fn sample_now() -> DateTime<Utc> {
    chiso_core::time::parse_timestamp("2025-12-31T12:00:00+07:00").expect("an instant")
}

/// The built-in sample city in a store of its own (`dir/city`).
pub async fn sample_store(dir: &TempDir) -> PathBuf {
    let store = dir.path("city");
    chiso_ingest::sample::ensure_store(&store)
        .await
        .expect("the sample city");
    store
}

/// The sample city opened at [`sample_now`], in a folder removed when the
/// test ends.
#[derive(Debug)]
pub struct SampleCity {
    pub engine: Engine,
    pub store: PathBuf,
    pub dir: TempDir,
}

impl SampleCity {
    pub async fn open(name: &str) -> Self {
        let dir = TempDir::new(name);
        let store = sample_store(&dir).await;
        let options = EngineOptions {
            now: Some(sample_now()),
            ..EngineOptions::default()
        };
        let engine = Engine::open(&store, options).await.expect("the engine");
        Self { engine, store, dir }
    }
}

/// Whether `program` runs (asked its version with `version_arg`). When it
/// does not, the test skips its part with a note, unless the variable
/// `require` is set (CI sets it after installing the Debian `package`).
pub fn tool_available(program: &str, version_arg: &str, require: &str, package: &str) -> bool {
    let found = std::process::Command::new(program)
        .arg(version_arg)
        .output()
        .is_ok();
    if !found {
        assert!(
            std::env::var_os(require).is_none(),
            "{require} is set but {program} is not installed (apt-get install {package})"
        );
        eprintln!("{program} is not installed (apt-get install {package}): skipping its part");
    }
    found
}

/// A Python with `packages` installed from PyPI, in a venv `cache/name`
/// kept between runs (tests pass their `CARGO_TARGET_TMPDIR`); `None` when
/// there is no Python or no network, which skips the test unless
/// `CHISO_REQUIRE_PYTHON` is set (CI sets it).
pub fn python_with(cache: &Path, name: &str, packages: &[&str]) -> Option<PathBuf> {
    let venv = cache.join(name);
    let python = venv.join("bin/python");
    let ready = venv.join(".ready");
    if ready.exists() {
        return Some(python);
    }
    let run = |program: &Path, args: &[&str]| {
        std::process::Command::new(program)
            .args(args)
            .status()
            .is_ok_and(|status| status.success())
    };
    let venv_text = venv.to_string_lossy().into_owned();
    let mut install = vec!["-m", "pip", "install", "--quiet"];
    install.extend(packages);
    if run(Path::new("python3"), &["-m", "venv", &venv_text]) && run(&python, &install) {
        std::fs::write(&ready, "").expect("the venv's mark");
        return Some(python);
    }
    let what = packages.join(" ");
    assert!(
        std::env::var_os("CHISO_REQUIRE_PYTHON").is_none(),
        "CHISO_REQUIRE_PYTHON is set but `python3 -m venv` and `pip install {what}` failed"
    );
    eprintln!("skipped: no python3 venv with {what} (needs python3-venv and PyPI)");
    None
}
