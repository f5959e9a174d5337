//! `ipam.resolvConf`: a resolv.conf file turned into the result's `dns`.

use cni_spec::Dns;

/// Read `nameserver`, `domain`, `search` and `options` lines as the
/// reference does: comments (`#`, `;`) and short lines are skipped, the
/// last `domain` wins, `search` and `options` accumulate.
pub fn parse_resolv_conf(text: &str) -> Dns {
    let mut dns = Dns::default();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 2 {
            continue;
        }
        let rest = fields[1..].iter().map(|s| s.to_string());
        match fields[0] {
            "nameserver" => dns.nameservers.push(fields[1].to_string()),
            "domain" => dns.domain = Some(fields[1].to_string()),
            "search" => dns.search.extend(rest),
            "options" => dns.options.extend(rest),
            _ => {}
        }
    }
    dns
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_four_keywords() {
        let dns = parse_resolv_conf(
            "# comment\n; also\nnameserver 10.0.0.1\nnameserver fd00::1\n\
             domain example.com\nsearch a.example b.example\n  options ndots:5 edns0\nbogus\nsortlist x\n",
        );
        assert_eq!(dns.nameservers, ["10.0.0.1", "fd00::1"]);
        assert_eq!(dns.domain.as_deref(), Some("example.com"));
        assert_eq!(dns.search, ["a.example", "b.example"]);
        assert_eq!(dns.options, ["ndots:5", "edns0"]);
        assert!(parse_resolv_conf("").is_empty());
    }
}
