//! ARCHITECTURE.md's rules on who depends on whom, checked against
//! `cargo metadata`: the crates point one way along the pipeline, and the
//! big outside crates stay in the crate that owns their concern.

use std::collections::{BTreeMap, BTreeSet};

/// Each crate's direct dependencies (normal ones, not dev or build).
fn dependencies() -> BTreeMap<String, BTreeSet<String>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let metadata: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let mut crates = BTreeMap::new();
    for package in metadata["packages"].as_array().expect("packages") {
        let name = package["name"].as_str().expect("name").to_owned();
        let normal: BTreeSet<String> = package["dependencies"]
            .as_array()
            .expect("dependencies")
            .iter()
            .filter(|d| d["kind"].is_null())
            .map(|d| d["name"].as_str().expect("name").to_owned())
            .collect();
        crates.insert(name, normal);
    }
    crates
}

#[test]
fn crates_depend_on_each_other_as_architecture_md_says() {
    let crates = dependencies();
    // Which chiso crates each may use; the binary (`chiso`) may use all.
    let allowed: [(&str, &[&str]); 13] = [
        ("chiso-core", &[]),
        ("chiso-chart", &[]),
        ("chiso-gen", &["chiso-core"]),
        ("chiso-exec", &["chiso-core"]),
        ("chiso-store", &["chiso-core", "chiso-exec"]),
        ("chiso-ingest", &["chiso-core", "chiso-store"]),
        ("chiso-engine", &["chiso-core", "chiso-store", "chiso-exec"]),
        (
            "chiso-dashboard",
            &["chiso-core", "chiso-engine", "chiso-chart"],
        ),
        (
            "chiso-report",
            &[
                "chiso-core",
                "chiso-store",
                "chiso-engine",
                "chiso-dashboard",
                "chiso-chart",
            ],
        ),
        ("chiso-users", &["chiso-core", "chiso-engine"]),
        (
            "chiso-pg",
            &["chiso-core", "chiso-store", "chiso-engine", "chiso-users"],
        ),
        (
            "chiso-test-support",
            &["chiso-core", "chiso-engine", "chiso-ingest"],
        ),
        (
            "chiso-server",
            &[
                "chiso-core",
                "chiso-store",
                "chiso-ingest",
                "chiso-engine",
                "chiso-dashboard",
                "chiso-chart",
                "chiso-report",
                "chiso-users",
            ],
        ),
    ];
    let mut broken = Vec::new();
    for (name, may_use) in allowed {
        let uses = crates
            .get(name)
            .unwrap_or_else(|| panic!("no crate {name}"));
        for used in uses.iter().filter(|d| d.starts_with("chiso-")) {
            if !may_use.contains(&used.as_str()) {
                broken.push(format!("{name} depends on {used}"));
            }
        }
    }
    // Concerns that live in one crate each.
    let owners: [(&str, &[&str]); 8] = [
        ("datafusion", &["chiso-exec"]),
        // Tests' helpers are only ever a dev-dependency.
        ("chiso-test-support", &[]),
        ("axum", &["chiso-server"]),
        ("hyper", &["chiso-server"]),
        ("datafusion-postgres", &["chiso-pg"]),
        ("deltalake", &["chiso-store"]),
        ("plotters", &["chiso-chart"]),
        ("anyhow", &["chiso"]),
    ];
    for (outside, owned_by) in owners {
        for (name, uses) in &crates {
            if uses.contains(outside) && !owned_by.contains(&name.as_str()) {
                broken.push(format!("{name} depends on {outside}"));
            }
        }
    }
    assert!(
        broken.is_empty(),
        "against ARCHITECTURE.md:\n{}",
        broken.join("\n")
    );
    assert_eq!(
        crates.keys().filter(|n| n.starts_with("chiso")).count(),
        14,
        "a new crate needs its rules here and in ARCHITECTURE.md"
    );
}
