//! The card families come from `scard_ksp::default_profiles` (PIV, OpenPGP and GIDS with their
//! built-in card models, plus the user's model files from `$XDG_CONFIG_HOME/scard/cards/`).

use scard_minidriver::ProfileRegistry;

/// The registry every card command uses. Model files that do not load are reported on
/// standard error (file, line, field) and the others still load.
pub(crate) fn registry() -> ProfileRegistry {
    let registry = scard_ksp::default_profiles();
    for err in registry.load_errors() {
        eprintln!("warning: card model not loaded: {err}");
    }
    registry
}
