//! Key names, as the Windows smart card KSP spells them: `\\.\<reader>\<container name>`
//! (the reader's full name with its backend prefix, the container's cmapfile name), or the
//! container name alone (container names are GUID strings, unique across cards in practice).
//! `\\.\<reader>\` with no container names the card's default container.

use crate::error::{KspError, Result};

/// The prefix of a fully qualified key name.
pub const KEY_NAME_PREFIX: &str = "\\\\.\\";

/// A parsed key name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyName {
    /// `\\.\<reader>\<container>`; an empty container is the card's default container.
    Qualified {
        /// The reader's full name.
        reader: String,
        /// The container name (empty: the default container).
        container: String,
    },
    /// A container name alone, looked up on every card.
    Container(String),
}

impl KeyName {
    /// Parses a key name.
    pub fn parse(name: &str) -> Result<Self> {
        let bad = |reason| KspError::InvalidKeyName { name: name.to_owned(), reason };
        if name.is_empty() {
            return Err(bad("empty"));
        }
        match name.strip_prefix(KEY_NAME_PREFIX) {
            Some(rest) => {
                let (reader, container) = rest
                    .rsplit_once('\\')
                    .ok_or_else(|| bad("expected \\\\.\\<reader>\\<container>"))?;
                if reader.is_empty() {
                    return Err(bad("no reader between \\\\.\\ and \\"));
                }
                Ok(KeyName::Qualified {
                    reader: reader.to_owned(),
                    container: container.to_owned(),
                })
            }
            None if name.contains('\\') => Err(bad("a container name has no backslash")),
            None => Ok(KeyName::Container(name.to_owned())),
        }
    }

    /// The qualified name of `container` on the card in `reader`.
    pub fn qualified(reader: &str, container: &str) -> String {
        format!("{KEY_NAME_PREFIX}{reader}\\{container}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_formats() {
        let full = KeyName::qualified("sim:piv:/tmp/a.json", "{1234}");
        assert_eq!(full, "\\\\.\\sim:piv:/tmp/a.json\\{1234}");
        assert_eq!(
            KeyName::parse(&full).unwrap(),
            KeyName::Qualified { reader: "sim:piv:/tmp/a.json".into(), container: "{1234}".into() }
        );
        assert_eq!(
            KeyName::parse("\\\\.\\pcsc:Virtual PCD 00 00\\").unwrap(),
            KeyName::Qualified {
                reader: "pcsc:Virtual PCD 00 00".into(),
                container: String::new()
            }
        );
        assert_eq!(KeyName::parse("{ABC}").unwrap(), KeyName::Container("{ABC}".into()));
        for bad in ["", "\\\\.\\nothing", "\\\\.\\\\x", "a\\b"] {
            assert!(matches!(KeyName::parse(bad), Err(KspError::InvalidKeyName { .. })), "{bad}");
        }
    }
}
