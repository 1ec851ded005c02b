//! Makes binaries and tests find libtorch without LD_LIBRARY_PATH.
//!
//! torch-sys exports the directory of the libtorch it linked as
//! `DEP_TCH_LIBTORCH_LIB`; we bake it in as an rpath. On Linux GNU ld drops
//! `libtorch_cuda.so` under `--as-needed` because no symbol of it is referenced
//! directly, and CUDA then reads as unavailable, so it is forced in.
use std::path::Path;

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") else {
        println!("cargo:warning=DEP_TCH_LIBTORCH_LIB not set; binaries need libtorch on the loader path");
        return;
    };
    println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if target_os == "linux" && Path::new(&lib).join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg=-L{lib}");
        println!("cargo:rustc-link-arg=-ltorch_cuda");
        println!("cargo:rustc-link-arg=-Wl,--as-needed");
    }
}
