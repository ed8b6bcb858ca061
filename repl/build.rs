//! Release builds of `sluice` link with identical-code folding (the many identical
//! instantiations of generic code, such as drop glue and derived traits, are kept once) and
//! packed relative relocations (a position-independent binary's relocation table in a
//! fraction of its size; glibc 2.36 or later loads it). Together about 10 MB less.

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    if std::env::var("PROFILE").as_deref() == Ok("release") {
        println!("cargo::rustc-link-arg-bins=-Wl,--icf=all");
        println!("cargo::rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}
