//! Reader names, the same for every command and for the PKCS#11 module:
//! `sim:<family>[:<state file>]`, `vpcd:<host>:<port>`, `pcsc:<reader name or glob>`,
//! `ccid:<vid>:<pid>[:<serial>]` and `ccid:*`.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::TransportError;

/// A parsed reader name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ReaderName {
    /// An in-process simulated card, persisted in `state` when given.
    Sim {
        /// `piv`, `openpgp`, `gids`, ...
        family: String,
        /// State file.
        state: Option<PathBuf>,
    },
    /// Our stack listening as vpcd does; a virtual card connects to it.
    Vpcd {
        /// Address to listen on.
        host: String,
        /// TCP port.
        port: u16,
    },
    /// A PC/SC reader by exact name or glob (`*` and `?`).
    Pcsc {
        /// Name or pattern.
        pattern: String,
    },
    /// A USB CCID reader by vendor and product id (and serial number).
    Ccid {
        /// USB vendor id.
        vid: u16,
        /// USB product id.
        pid: u16,
        /// Serial number string.
        serial: Option<String>,
    },
    /// Any USB CCID reader.
    CcidAny,
}

impl ReaderName {
    /// The backend prefix: `sim`, `vpcd`, `pcsc` or `ccid`.
    pub fn backend(&self) -> &'static str {
        match self {
            ReaderName::Sim { .. } => "sim",
            ReaderName::Vpcd { .. } => "vpcd",
            ReaderName::Pcsc { .. } => "pcsc",
            ReaderName::Ccid { .. } | ReaderName::CcidAny => "ccid",
        }
    }
}

impl FromStr for ReaderName {
    type Err = TransportError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        let bad = |reason| TransportError::InvalidName { name: name.to_owned(), reason };
        let (prefix, rest) = name.split_once(':').ok_or_else(|| {
            bad("expected sim:..., vpcd:HOST:PORT, pcsc:NAME, ccid:VID:PID (or group:GROUP)")
        })?;
        match prefix {
            "sim" => {
                let (family, state) = match rest.split_once(':') {
                    Some((family, state)) if !state.is_empty() => {
                        (family, Some(PathBuf::from(state)))
                    }
                    Some((family, _)) => (family, None),
                    None => (rest, None),
                };
                if family.is_empty() {
                    return Err(bad("sim: needs a card family (sim:piv, sim:openpgp, sim:gids)"));
                }
                Ok(ReaderName::Sim { family: family.to_ascii_lowercase(), state })
            }
            "vpcd" => {
                let (host, port) =
                    rest.rsplit_once(':').ok_or_else(|| bad("vpcd: needs HOST:PORT"))?;
                let port = port.parse().map_err(|_| bad("vpcd: port must be a number 0..65535"))?;
                let host = host.trim_start_matches('[').trim_end_matches(']');
                if host.is_empty() {
                    return Err(bad("vpcd: needs a host to listen on (e.g. 127.0.0.1)"));
                }
                Ok(ReaderName::Vpcd { host: host.to_owned(), port })
            }
            "pcsc" => {
                if rest.is_empty() {
                    return Err(bad("pcsc: needs a reader name or glob"));
                }
                Ok(ReaderName::Pcsc { pattern: rest.to_owned() })
            }
            "ccid" => {
                if rest == "*" {
                    return Ok(ReaderName::CcidAny);
                }
                let mut parts = rest.splitn(3, ':');
                let hex16 = |s: Option<&str>| {
                    s.and_then(|s| u16::from_str_radix(s.trim_start_matches("0x"), 16).ok())
                };
                let vid =
                    hex16(parts.next()).ok_or_else(|| bad("ccid: needs VID:PID in hex, or *"))?;
                let pid =
                    hex16(parts.next()).ok_or_else(|| bad("ccid: needs VID:PID in hex, or *"))?;
                let serial = parts.next().filter(|s| !s.is_empty()).map(str::to_owned);
                Ok(ReaderName::Ccid { vid, pid, serial })
            }
            _ => Err(bad("unknown backend (sim, vpcd, pcsc or ccid)")),
        }
    }
}

impl fmt::Display for ReaderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReaderName::Sim { family, state: Some(state) } => {
                write!(f, "sim:{family}:{}", state.display())
            }
            ReaderName::Sim { family, state: None } => write!(f, "sim:{family}"),
            ReaderName::Vpcd { host, port } if host.contains(':') => {
                write!(f, "vpcd:[{host}]:{port}")
            }
            ReaderName::Vpcd { host, port } => write!(f, "vpcd:{host}:{port}"),
            ReaderName::Pcsc { pattern } => write!(f, "pcsc:{pattern}"),
            ReaderName::Ccid { vid, pid, serial: Some(s) } => {
                write!(f, "ccid:{vid:04x}:{pid:04x}:{s}")
            }
            ReaderName::Ccid { vid, pid, serial: None } => write!(f, "ccid:{vid:04x}:{pid:04x}"),
            ReaderName::CcidAny => write!(f, "ccid:*"),
        }
    }
}

/// Whether `name` matches the glob `pattern` (`*` any run, `?` one character).
pub fn glob_match(pattern: &str, name: &str) -> bool {
    if !pattern.contains(['*', '?']) {
        return pattern == name;
    }
    if pattern.is_ascii() && name.is_ascii() {
        return glob_match_units(pattern.as_bytes(), name.as_bytes());
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    glob_match_units(&p, &n)
}

/// [`glob_match`] over bytes (ASCII) or chars: `*` any run, `?` any one unit.
fn glob_match_units<T: Copy + PartialEq + From<u8>>(p: &[T], n: &[T]) -> bool {
    let (any, one) = (T::from(b'*'), T::from(b'?'));
    // Iterative matcher with backtracking to the last `*`.
    let (mut pi, mut ni) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        match p.get(pi) {
            Some(c) if *c == any => {
                star = Some((pi, ni));
                pi += 1;
            }
            Some(c) if *c == one || Some(c) == n.get(ni) => {
                pi += 1;
                ni += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    pi = sp + 1;
                    ni = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    p.get(pi..).is_some_and(|rest| rest.iter().all(|c| *c == any))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form() {
        let parse = |s: &str| s.parse::<ReaderName>().unwrap();
        assert_eq!(parse("sim:piv"), ReaderName::Sim { family: "piv".into(), state: None });
        assert_eq!(
            parse("sim:OpenPGP:/tmp/card.json"),
            ReaderName::Sim { family: "openpgp".into(), state: Some("/tmp/card.json".into()) }
        );
        assert_eq!(
            parse("vpcd:127.0.0.1:35963"),
            ReaderName::Vpcd { host: "127.0.0.1".into(), port: 35963 }
        );
        assert_eq!(parse("vpcd:[::1]:35963"), ReaderName::Vpcd { host: "::1".into(), port: 35963 });
        assert_eq!(
            parse("pcsc:Virtual PCD 00 00"),
            ReaderName::Pcsc { pattern: "Virtual PCD 00 00".into() }
        );
        assert_eq!(
            parse("ccid:1050:0407"),
            ReaderName::Ccid { vid: 0x1050, pid: 0x0407, serial: None }
        );
        assert_eq!(
            parse("ccid:1050:0407:123"),
            ReaderName::Ccid { vid: 0x1050, pid: 0x0407, serial: Some("123".into()) }
        );
        assert_eq!(parse("ccid:*"), ReaderName::CcidAny);
        for s in [
            "sim:piv",
            "sim:gids:/x/y",
            "vpcd:127.0.0.1:1",
            "vpcd:[::1]:2",
            "pcsc:A*",
            "ccid:1050:0407:9",
            "ccid:*",
        ] {
            assert_eq!(parse(s).to_string(), s);
        }
    }

    #[test]
    fn bad_names_say_why() {
        for s in
            ["piv", "sim:", "vpcd:host", "vpcd::1", "vpcd:h:99999", "pcsc:", "ccid:xyz", "usb:1"]
        {
            let err = s.parse::<ReaderName>().unwrap_err();
            assert!(matches!(err, TransportError::InvalidName { .. }), "{s}: {err}");
        }
    }

    #[test]
    fn globs() {
        assert!(glob_match("Virtual PCD*", "Virtual PCD 00 00"));
        assert!(glob_match("*00 01", "Virtual PCD 00 01"));
        assert!(glob_match("Virtual PCD 0? 00", "Virtual PCD 00 00"));
        assert!(!glob_match("Virtual PCD 01*", "Virtual PCD 00 00"));
        assert!(glob_match("*", ""));
        assert!(glob_match("a*b*c", "aXXbYYc"));
        assert!(!glob_match("a*b*c", "aXXbYY"));
    }
}
