//! Link options of the module (`libscard_pkcs11.so`).
//!
//! `-Bsymbolic`: the module's own references to its own exported functions (the two
//! `CK_FUNCTION_LIST`s name every `C_*` function) are bound inside the module when it is
//! linked. Without it each is a symbol the dynamic loader looks up in every library of the
//! application at `dlopen` time (160 lookups, most of the module's load cost), and an
//! application that already has another PKCS#11 module's `C_*` symbols in its global scope
//! would get that module's functions in our function list.
fn main() {
    println!("cargo:rustc-cdylib-link-arg=-Wl,-Bsymbolic");
    println!("cargo:rerun-if-changed=build.rs");
}
