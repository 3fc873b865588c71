//! Generates the gRPC code for `meridian.v1` at build time with a vendored protoc, so a fresh
//! machine needs no system protobuf package.

#[allow(unsafe_code)]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY: a build script is single-threaded; nothing else reads the environment meanwhile.
    unsafe { std::env::set_var("PROTOC", protoc) };
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out_dir.join("meridian_descriptor.bin"))
        .bytes(".")
        .compile_protos(
            &[
                "meridian/v1/kv.proto",
                "meridian/v1/admin.proto",
                "meridian/v1/peer.proto",
            ],
            &["."],
        )?;
    println!("cargo:rerun-if-changed=meridian");
    Ok(())
}
