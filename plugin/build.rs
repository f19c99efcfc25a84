//! Generates the Rust code of the kubelet's PodResources API from
//! `proto/podresources_v1.proto`, in pure Rust: protox compiles the .proto
//! to a descriptor set (no `protoc` on the build machines), tonic-prost-build
//! turns it into prost messages and tonic stubs.
//!
//! Two variants: `OUT_DIR/client` (the client only, what the `multus`
//! binary uses) and `OUT_DIR/full` (client and server, for the fake kubelet
//! of the tests).

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    const PROTO: &str = "proto/podresources_v1.proto";
    println!("cargo:rerun-if-changed={PROTO}");
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    for (dir, server) in [("client", false), ("full", true)] {
        let dir = out.join(dir);
        std::fs::create_dir_all(&dir)?;
        let descriptors = protox::compile([PROTO], ["proto"])?;
        tonic_prost_build::configure()
            .build_client(true)
            .build_server(server)
            .build_transport(false)
            .emit_rerun_if_changed(false)
            .out_dir(&dir)
            .compile_fds(descriptors)?;
    }
    Ok(())
}
