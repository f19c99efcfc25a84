//! Generates the Rust code of the kubelet's device plugin API (v1beta1) for
//! the test device plugin (`src/bin/test-device-plugin.rs`) from
//! `proto/deviceplugin_v1beta1.proto`, in pure Rust: protox compiles it (no
//! `protoc` on the build machines), tonic-prost-build generates the code.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    const PROTO: &str = "proto/deviceplugin_v1beta1.proto";
    println!("cargo:rerun-if-changed={PROTO}");
    let descriptors = protox::compile([PROTO], ["proto"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .build_transport(false)
        .emit_rerun_if_changed(false)
        .compile_fds(descriptors)?;
    Ok(())
}
