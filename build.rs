//! Compiles the gRPC contract with protox (a pure-Rust .proto compiler: no system protoc needed).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "proto/trdscreen/v1/screening.proto";
    println!("cargo:rerun-if-changed={proto}");
    let descriptors = protox::compile([proto], ["proto"])?;
    tonic_prost_build::configure()
        .build_server(false)
        .build_client(false)
        .compile_fds(descriptors)?;
    Ok(())
}
