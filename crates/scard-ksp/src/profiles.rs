//! The one place card families are registered: PIV, OpenPGP and GIDS, each with its built-in
//! card models, plus the user's model files from `$XDG_CONFIG_HOME/scard/cards/`.

use scard_minidriver::ProfileRegistry;

/// The profile registry every part of scard uses (the provider, the PKCS#11 module, the CLI).
/// The user's model files that do not load are logged (file, line, field; see
/// [`ProfileRegistry::user_load_errors`]) and the others still load; built-in files are
/// parsed when a card needs them (the tests load them all).
pub fn default_profiles() -> ProfileRegistry {
    let mut registry = ProfileRegistry::new();
    registry.register(scard_profile_piv::family());
    registry.register(scard_profile_openpgp::family());
    registry.register(scard_profile_gids::family());
    if let Some(dir) = scard_minidriver::model::user_model_dir() {
        registry.load_user_models(&dir);
    }
    for err in registry.user_load_errors() {
        tracing::warn!("card model not loaded: {err}");
    }
    registry
}

#[cfg(test)]
mod tests {
    /// Every built-in card model loads, and the quick look that picks which file to parse
    /// for an ATR (scard_minidriver::model) reads each the way the parser does.
    #[test]
    fn builtin_models_load_and_are_picked_by_their_lines() {
        let registry = super::default_profiles();
        let builtin: Vec<String> = registry
            .load_errors()
            .filter(|e| e.to_string().contains("builtin:"))
            .map(ToString::to_string)
            .collect();
        assert!(builtin.is_empty(), "{builtin:?}");
        let mismatches = registry.builtin_hint_mismatches();
        assert!(mismatches.is_empty(), "{mismatches:#?}");
    }
}
