//! The one place card families are registered: PIV, OpenPGP and GIDS, each with its built-in
//! card models, plus the user's model files from `$XDG_CONFIG_HOME/scard/cards/`.

use scard_minidriver::ProfileRegistry;

/// The profile registry every part of scard uses (the provider, the PKCS#11 module, the CLI).
/// Model files that do not load are logged (file, line, field; see
/// [`ProfileRegistry::load_errors`]) and the others still load.
pub fn default_profiles() -> ProfileRegistry {
    let mut registry = ProfileRegistry::new();
    registry.register(scard_profile_piv::family());
    registry.register(scard_profile_openpgp::family());
    registry.register(scard_profile_gids::family());
    if let Some(dir) = scard_minidriver::model::user_model_dir() {
        registry.load_user_models(&dir);
    }
    for err in registry.load_errors() {
        tracing::warn!("card model not loaded: {err}");
    }
    registry
}
