//! Compiles the gRPC contract with protox (a pure-Rust .proto compiler: no system protoc needed), and
//! keeps the descriptor set, comments included, for server reflection (so `grpcurl describe` shows
//! the documentation written in the .proto).

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "proto/trdscreen/v1/screening.proto";
    println!("cargo:rerun-if-changed={proto}");
    let descriptors = protox::Compiler::new(["proto"])?
        .include_source_info(true)
        .include_imports(true)
        .open_file(proto)?
        .file_descriptor_set();
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out.join("trdscreen_descriptor.bin"),
        descriptors.encode_to_vec(),
    )?;
    // A request that does not decode is INVALID_ARGUMENT, not INTERNAL (src/grpc/codec.rs).
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .codec_path("crate::grpc::codec::Codec")
        .compile_fds(descriptors)?;
    Ok(())
}
