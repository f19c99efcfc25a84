//! The engine-free image builder writes a valid OCI archive: index,
//! manifest, config and a layer holding both binaries, deterministically.

use std::path::Path;
use std::process::Command;

use multus_e2e::workspace_root;
use serde_json::Value;
/// SHA-256 of a file through the system's `sha256sum`, independent of the
/// Python code under test.
fn sha256_hex(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

fn build(dir: &Path, name: &str) -> std::path::PathBuf {
    std::fs::write(dir.join("op"), b"operator-binary-bytes").unwrap();
    std::fs::write(dir.join("pl"), b"plugin-binary-bytes").unwrap();
    let out = dir.join(name);
    let status = Command::new("python3")
        .arg(workspace_root().join("image/build-image.py"))
        .args(["--operator"])
        .arg(dir.join("op"))
        .arg("--plugin")
        .arg(dir.join("pl"))
        .args(["--image", "example.com/multus:v9"])
        .arg("--output")
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    out
}

fn json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn archive_is_a_complete_oci_layout() {
    let dir = tempfile::tempdir().unwrap();
    let archive = build(dir.path(), "image.tar");
    let root = dir.path().join("x");
    std::fs::create_dir(&root).unwrap();
    assert!(
        Command::new("tar")
            .arg("-xf")
            .arg(&archive)
            .arg("-C")
            .arg(&root)
            .status()
            .unwrap()
            .success()
    );

    assert_eq!(
        json(&root.join("oci-layout"))["imageLayoutVersion"],
        "1.0.0"
    );
    let index = json(&root.join("index.json"));
    let entry = &index["manifests"][0];
    assert_eq!(
        entry["annotations"]["io.containerd.image.name"],
        "example.com/multus:v9"
    );
    assert_eq!(
        entry["annotations"]["org.opencontainers.image.ref.name"],
        "v9"
    );
    let blob = |digest: &Value| {
        root.join("blobs/sha256")
            .join(digest.as_str().unwrap().trim_start_matches("sha256:"))
    };

    // Every blob's name is its digest and its size is right.
    let manifest_path = blob(&entry["digest"]);
    assert_eq!(
        format!("sha256:{}", sha256_hex(&manifest_path)),
        entry["digest"].as_str().unwrap()
    );
    let manifest = json(&manifest_path);
    assert_eq!(manifest["schemaVersion"], 2);
    let config_desc = &manifest["config"];
    let config_path = blob(&config_desc["digest"]);
    assert_eq!(
        std::fs::metadata(&config_path).unwrap().len(),
        config_desc["size"].as_u64().unwrap()
    );
    let config = json(&config_path);
    assert_eq!(config["os"], "linux");
    assert_eq!(config["architecture"], "amd64");
    assert_eq!(
        config["config"]["Entrypoint"],
        serde_json::json!(["/usr/bin/multus-operator"])
    );

    let layer_desc = &manifest["layers"][0];
    assert_eq!(
        layer_desc["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );
    let layer_path = blob(&layer_desc["digest"]);
    assert_eq!(
        format!("sha256:{}", sha256_hex(&layer_path)),
        layer_desc["digest"].as_str().unwrap()
    );

    // The layer holds both binaries, executable, with the given bytes.
    let fs = root.join("rootfs");
    std::fs::create_dir(&fs).unwrap();
    assert!(
        Command::new("tar")
            .arg("-xzf")
            .arg(&layer_path)
            .arg("-C")
            .arg(&fs)
            .status()
            .unwrap()
            .success()
    );
    assert_eq!(
        std::fs::read(fs.join("usr/bin/multus-operator")).unwrap(),
        b"operator-binary-bytes"
    );
    assert_eq!(
        std::fs::read(fs.join("usr/bin/multus")).unwrap(),
        b"plugin-binary-bytes"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(fs.join("usr/bin/multus"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o755);

    // diff_id is the digest of the uncompressed layer.
    let raw = root.join("layer.tar");
    let out = Command::new("gzip")
        .arg("-dc")
        .arg(&layer_path)
        .output()
        .unwrap();
    std::fs::write(&raw, out.stdout).unwrap();
    assert_eq!(
        config["rootfs"]["diff_ids"][0].as_str().unwrap(),
        format!("sha256:{}", sha256_hex(&raw))
    );

    // docker load's manifest.json points at the same blobs.
    let docker = json(&root.join("manifest.json"));
    assert_eq!(docker[0]["RepoTags"][0], "example.com/multus:v9");
    assert!(root.join(docker[0]["Config"].as_str().unwrap()).is_file());
    assert!(
        root.join(docker[0]["Layers"][0].as_str().unwrap())
            .is_file()
    );
}

#[test]
fn archive_is_deterministic() {
    let dir = tempfile::tempdir().unwrap();
    let a = std::fs::read(build(dir.path(), "a.tar")).unwrap();
    let b = std::fs::read(build(dir.path(), "b.tar")).unwrap();
    assert_eq!(a, b);
}
