//! (being written)
/// Answer-to-reset (being written).
#[derive(Debug)]
pub struct Atr;
