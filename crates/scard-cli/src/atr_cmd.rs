use crate::Outcome;
pub(crate) fn run(_t: &str, _j: bool) -> Outcome { Outcome { text: String::new(), status: 1 } }
