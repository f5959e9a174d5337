//! CNI spec versions and the rules that depend on them.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

/// A CNI spec version. Ordered, so "at least 0.4.0" is a comparison.
/// 0.1.0 and 0.2.0 exist only so old cached results can be read; plugins
/// do not advertise them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Version {
    V0_1_0,
    V0_2_0,
    V0_3_0,
    V0_3_1,
    V0_4_0,
    V1_0_0,
    V1_1_0,
}

/// The versions our plugins speak (what VERSION reports).
pub const SUPPORTED: &[Version] = &[
    Version::V0_3_0,
    Version::V0_3_1,
    Version::V0_4_0,
    Version::V1_0_0,
    Version::V1_1_0,
];

impl Version {
    pub const LATEST: Version = Version::V1_1_0;

    pub fn as_str(self) -> &'static str {
        match self {
            Version::V0_1_0 => "0.1.0",
            Version::V0_2_0 => "0.2.0",
            Version::V0_3_0 => "0.3.0",
            Version::V0_3_1 => "0.3.1",
            Version::V0_4_0 => "0.4.0",
            Version::V1_0_0 => "1.0.0",
            Version::V1_1_0 => "1.1.0",
        }
    }

    /// Parse a version string that a plugin must be able to serve
    /// (code 1 otherwise, as the spec asks).
    pub fn parse_supported(s: &str) -> Result<Version> {
        match s.parse::<Version>() {
            Ok(v) if SUPPORTED.contains(&v) => Ok(v),
            _ => Err(Error::incompatible_version(format!(
                "incompatible CNI versions: config is \"{s}\", plugin supports {}",
                supported_list()
            ))),
        }
    }

    /// Results of this version carry `ips[].version` and the 0.3 shape.
    pub fn is_0_3_or_0_4(self) -> bool {
        matches!(self, Version::V0_3_0 | Version::V0_3_1 | Version::V0_4_0)
    }

    /// The pre-0.3 result shape (`ip4` / `ip6`).
    pub fn is_legacy(self) -> bool {
        self < Version::V0_3_0
    }
}

/// `["0.3.0", ...]` for messages.
pub fn supported_list() -> String {
    let v: Vec<String> = SUPPORTED
        .iter()
        .map(|v| format!("\"{}\"", v.as_str()))
        .collect();
    format!("[{}]", v.join(", "))
}

impl FromStr for Version {
    type Err = Error;

    fn from_str(s: &str) -> Result<Version> {
        Ok(match s {
            "0.1.0" => Version::V0_1_0,
            "0.2.0" => Version::V0_2_0,
            "0.3.0" => Version::V0_3_0,
            "0.3.1" => Version::V0_3_1,
            "0.4.0" => Version::V0_4_0,
            "1.0.0" => Version::V1_0_0,
            "1.1.0" => Version::V1_1_0,
            other => {
                return Err(Error::incompatible_version(format!(
                    "unknown CNI version \"{other}\""
                )))
            }
        })
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for Version {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Version {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse()
            .map_err(|e: Error| serde::de::Error::custom(e.msg))
    }
}

/// Pick the highest version we support among a config list's `cniVersion`
/// and `cniVersions` (spec 1.1: the runtime must use the highest it knows).
pub fn highest_supported<'a>(
    candidates: impl IntoIterator<Item = &'a str>,
    supported: &[Version],
) -> Option<Version> {
    candidates
        .into_iter()
        .filter_map(|s| s.parse::<Version>().ok())
        .filter(|v| supported.contains(v))
        .max()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_ordered_and_round_trip() {
        for v in SUPPORTED {
            assert_eq!(v.as_str().parse::<Version>().unwrap(), *v);
        }
        assert!(Version::V0_3_1 < Version::V0_4_0);
        assert!(Version::V1_0_0 < Version::V1_1_0);
    }

    #[test]
    fn unsupported_versions_are_code_1() {
        assert_eq!(Version::parse_supported("9.9.9").unwrap_err().code, 1);
        assert_eq!(Version::parse_supported("0.2.0").unwrap_err().code, 1);
        assert_eq!(Version::parse_supported("").unwrap_err().code, 1);
        assert_eq!(Version::parse_supported("1.0.0").unwrap(), Version::V1_0_0);
    }

    #[test]
    fn highest_supported_ignores_unknown() {
        let v = highest_supported(["0.4.0", "1.0.0", "7.0.0", "junk"], SUPPORTED);
        assert_eq!(v, Some(Version::V1_0_0));
        assert_eq!(highest_supported(["7.0.0"], SUPPORTED), None);
    }
}
