//! `multus-operator crd` prints exactly what `crds/` holds.

use std::path::PathBuf;
use std::process::Command;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn crd_output_equals_the_committed_crds() {
    let out = Command::new(env!("CARGO_BIN_EXE_multus-operator"))
        .arg("crd")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8(out.stdout).unwrap();
    let documents: Vec<&str> = printed
        .split("---\n")
        .filter(|d| !d.trim().is_empty())
        .collect();
    assert_eq!(documents.len(), 2, "MultusConfig and MultusNodeState");
    for doc in documents {
        let value: serde_yaml::Value = serde_yaml::from_str(doc).unwrap();
        let name = value["metadata"]["name"].as_str().unwrap().to_owned();
        let path = repo_root().join("crds").join(format!("{name}.yaml"));
        let committed = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "{} is missing ({e}); run `cargo run -p multus-operator -- crd --output-dir crds`",
                path.display()
            )
        });
        assert_eq!(
            committed,
            doc,
            "{} is stale; run `cargo run -p multus-operator -- crd --output-dir crds`",
            path.display()
        );
    }
}

#[test]
fn crd_output_dir_writes_one_file_per_crd() {
    let dir = std::env::temp_dir().join(format!("multus-crd-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let status = Command::new(env!("CARGO_BIN_EXE_multus-operator"))
        .args(["crd", "--output-dir"])
        .arg(&dir)
        .status()
        .unwrap();
    assert!(status.success());
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(
        names,
        [
            "multusconfigs.multus.dev.yaml",
            "multusnodestates.multus.dev.yaml"
        ]
    );
}

#[test]
fn unwritable_output_dir_is_a_clear_error() {
    // A directory below a regular file cannot be created, even by root.
    let file = std::env::temp_dir().join(format!("multus-crd-file-{}", std::process::id()));
    std::fs::write(&file, b"not a directory").unwrap();
    let target = file.join("crds");
    let out = Command::new(env!("CARGO_BIN_EXE_multus-operator"))
        .args(["crd", "--output-dir"])
        .arg(&target)
        .output()
        .unwrap();
    std::fs::remove_file(&file).unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&*target.to_string_lossy()), "{stderr}");
}

#[test]
fn output_dir_is_created_when_missing() {
    let dir = std::env::temp_dir().join(format!("multus-crd-new-{}", std::process::id()));
    let target = dir.join("a/b");
    let status = Command::new(env!("CARGO_BIN_EXE_multus-operator"))
        .args(["crd", "--output-dir"])
        .arg(&target)
        .status()
        .unwrap();
    let created = target.join("multusconfigs.multus.dev.yaml").is_file();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(status.success());
    assert!(created);
}
