//! `CNI_ARGS`: `K1=V1;K2=V2`, the old way to pass per-container arguments.

use crate::error::{Error, Result};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CniArgs {
    pairs: Vec<(String, String)>,
}

impl CniArgs {
    /// Parse `CNI_ARGS`. Empty segments (a trailing `;`) are tolerated; a
    /// segment without `=` is refused (code 4, naming the variable).
    pub fn parse(s: &str) -> Result<CniArgs> {
        let mut pairs = Vec::new();
        for seg in s.split(';') {
            if seg.is_empty() {
                continue;
            }
            let Some((k, v)) = seg.split_once('=') else {
                return Err(Error::invalid_env(format!(
                    "CNI_ARGS has an invalid pair {seg:?}: expected KEY=VALUE"
                )));
            };
            if k.is_empty() {
                return Err(Error::invalid_env(format!(
                    "CNI_ARGS has an invalid pair {seg:?}: empty key"
                )));
            }
            pairs.push((k.to_string(), v.to_string()));
        }
        Ok(CniArgs { pairs })
    }

    /// The last value given for `key` (later pairs override earlier ones).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pairs_and_tolerates_trailing_separator() {
        let a = CniArgs::parse("IgnoreUnknown=1;IP=10.0.0.5;K8S_POD_NAME=a=b;").unwrap();
        assert_eq!(a.get("IP"), Some("10.0.0.5"));
        assert_eq!(a.get("K8S_POD_NAME"), Some("a=b"));
        assert_eq!(a.get("nope"), None);
        assert!(CniArgs::parse("").unwrap().is_empty());
    }

    #[test]
    fn refuses_pairs_without_equals() {
        let e = CniArgs::parse("IP").unwrap_err();
        assert_eq!(e.code, 4);
        assert!(e.msg.contains("CNI_ARGS"));
        assert_eq!(CniArgs::parse("=x").unwrap_err().code, 4);
    }
}
