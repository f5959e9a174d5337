//! Tests of the helpers in mod.rs and, as root, of the whole layer against
//! the kernel inside throw-away namespaces.

use super::*;

#[test]
fn mac_round_trip() {
    let m = parse_mac("02:AB:cd:00:01:ff").unwrap();
    assert_eq!(m, [0x02, 0xab, 0xcd, 0x00, 0x01, 0xff]);
    assert_eq!(format_mac(&m), "02:ab:cd:00:01:ff");
    for bad in [
        "",
        "02:ab",
        "02:ab:cd:00:01:ff:00",
        "0g:ab:cd:00:01:ff",
        "2:ab:cd:00:01:ff0",
    ] {
        assert!(parse_mac(bad).is_err(), "{bad}");
    }
}

#[test]
fn ifname_rules() {
    assert!(check_ifname("eth0").is_ok());
    assert!(check_ifname("veth1a2b3c4d5e6f").is_err()); // 16 bytes
    assert!(check_ifname("veth1a2b3c4d5e6").is_ok());
    for bad in ["", ".", "..", "a/b", "a b", "a:b"] {
        assert!(check_ifname(bad).is_err(), "{bad}");
    }
}

#[test]
fn errno_is_kept_and_classified() {
    let e = to_error(
        NlError::Kernel {
            errno: libc::EEXIST,
            msg: None,
            index: None,
        },
        "create veth veth1a2b3c4d",
    );
    assert_eq!(e.code, cni_spec::error::code::IO);
    assert_eq!(e.msg, "create veth veth1a2b3c4d: File exists");
    assert_eq!(errno(&e), Some(libc::EEXIST));
    assert!(is_exists(&e));
    assert!(!is_not_found(&e));
    // Context keeps the errno.
    let e = to_error(
        NlError::Kernel {
            errno: libc::ENODEV,
            msg: Some("no such device".into()),
            index: None,
        },
        "find link x",
    )
    .context("DEL");
    assert!(is_not_found(&e));
    assert!(
        e.msg.contains("No such device (no such device)"),
        "{}",
        e.msg
    );
    assert_eq!(errno(&Error::io("x")), None);
}

#[cfg(test)]
mod root;
