//! Links src/native/cpu_check.c into the `sluice` binary on x86-64 Linux: a constructor,
//! compiled for the baseline CPU, that stops a build for a newer CPU with a clear message on
//! a CPU that lacks its features (why C: see that file).

fn main() {
    println!("cargo:rerun-if-changed=src/native/cpu_check.c");
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    if var("CARGO_CFG_TARGET_ARCH") != "x86_64" || var("CARGO_CFG_TARGET_OS") != "linux" {
        return;
    }
    let features = var("CARGO_CFG_TARGET_FEATURE");
    let objects = cc::Build::new()
        .file("src/native/cpu_check.c")
        .define("SLUICE_TARGET_FEATURES", format!("\"{features}\"").as_str())
        // The baseline whatever the Rust code targets: this code must run on any x86-64.
        .flag("-march=x86-64")
        .flag("-mtune=generic")
        .warnings(true)
        .compile_intermediates();
    // An object given to the linker is linked whole, so the constructor, which nothing
    // calls, is kept (from an archive it would be left out). Only the binary: tests and
    // examples need no check.
    for object in objects {
        println!("cargo:rustc-link-arg-bins={}", object.display());
    }
}
