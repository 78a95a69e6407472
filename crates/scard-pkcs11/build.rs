//! Link options of the module (`libscard_pkcs11.so`).
//!
//! `-Bsymbolic` (ELF targets): the module's own references to its own exported functions (the
//! two `CK_FUNCTION_LIST`s name every `C_*` function) are bound inside the module when it is
//! linked. Without it each is a symbol the dynamic loader looks up in every library of the
//! application at `dlopen` time (160 look-ups, a third of the module's load cost measured in
//! `pkcs11-tool`), and an application that already has another PKCS#11 module's `C_*`
//! symbols in its global scope would get that module's functions in our function list.
//! Mach-O (macOS) binds a library's references to its own definitions already (two-level
//! namespace), and its linker has no such option.
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let elf = matches!(
        os.as_str(),
        "linux"
            | "android"
            | "freebsd"
            | "netbsd"
            | "openbsd"
            | "dragonfly"
            | "illumos"
            | "solaris"
    );
    if elf {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-Bsymbolic");
    }
}
