//! Generates the Rust code of the node-local gRPC APIs the plugin asks, in
//! pure Rust: protox compiles the .proto files to a descriptor set (no
//! `protoc` on the build machines), tonic-prost-build turns it into prost
//! messages and tonic stubs.
//!
//! - `proto/podresources_v1.proto`: the kubelet's PodResources API
//!   (package `v1`, so `v1.rs`);
//! - `proto/cri_runtime_v1.proto`: the container runtime's CRI API
//!   (package `runtime.v1`, so `runtime.v1.rs`).
//!
//! Two variants: `OUT_DIR/client` (the clients only, what the `multus`
//! binary uses) and `OUT_DIR/full` (clients and servers, for the fake
//! kubelet and the fake runtime of the tests).

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    const PROTOS: [&str; 2] = ["proto/podresources_v1.proto", "proto/cri_runtime_v1.proto"];
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={proto}");
    }
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    let descriptors = protox::compile(PROTOS, ["proto"])?;
    for (dir, server) in [("client", false), ("full", true)] {
        let dir = out.join(dir);
        std::fs::create_dir_all(&dir)?;
        tonic_prost_build::configure()
            .build_client(true)
            .build_server(server)
            .build_transport(false)
            .emit_rerun_if_changed(false)
            .out_dir(&dir)
            .compile_fds(descriptors.clone())?;
    }
    Ok(())
}
