//! Generates the Rust code of the kubelet APIs the test plugins speak, from
//! `proto/`, in pure Rust: protox compiles the files (no `protoc` on the
//! build machines), tonic-prost-build generates the code.
//!
//! - `deviceplugin_v1beta1.proto`: the device plugin API, for the test
//!   device plugin (`src/bin/test-device-plugin.rs`);
//! - `pluginregistration_v1.proto`, `dra_v1.proto`, `dra_v1beta1.proto`:
//!   plugin registration and the DRA plugin API, for the test DRA driver
//!   (`src/bin/test-dra-driver/`).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    const PROTOS: [&str; 4] = [
        "proto/deviceplugin_v1beta1.proto",
        "proto/pluginregistration_v1.proto",
        "proto/dra_v1.proto",
        "proto/dra_v1beta1.proto",
    ];
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={proto}");
    }
    let descriptors = protox::compile(PROTOS, ["proto"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .build_transport(false)
        .emit_rerun_if_changed(false)
        .compile_fds(descriptors)?;
    Ok(())
}
