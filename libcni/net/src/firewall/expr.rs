//! Rule expressions, encoded as the kernel's `nft_expr` attributes. Each
//! builder mirrors what `nft` itself emits for the same statement, so that
//! `nft list ruleset` prints our rules in their familiar form
//! (`ip saddr 10.88.0.0/16 oifname != "cni0" masquerade`).

use super::nl::Attrs;

// enum nft_registers: the 16-byte registers; a concatenation continues into
// the next one.
pub(crate) const REG_VERDICT: u32 = 0;
pub(crate) const REG_1: u32 = 1;
pub(crate) const REG_2: u32 = 2;

// enum nft_meta_keys
pub(crate) const META_IIFNAME: u32 = 6;
pub(crate) const META_OIFNAME: u32 = 7;
pub(crate) const META_NFPROTO: u32 = 15;
pub(crate) const META_L4PROTO: u32 = 16;

// enum nft_payload_bases
pub(crate) const PAYLOAD_LL: u32 = 0;
pub(crate) const PAYLOAD_NETWORK: u32 = 1;
pub(crate) const PAYLOAD_TRANSPORT: u32 = 2;

// enum nft_cmp_ops
pub(crate) const CMP_EQ: u32 = 0;
pub(crate) const CMP_NEQ: u32 = 1;

// Verdicts (netfilter.h and enum nft_verdicts).
pub(crate) const NF_DROP: i32 = 0;
pub(crate) const NF_ACCEPT: i32 = 1;
pub(crate) const NFT_JUMP: i32 = -3;

const NFT_LOOKUP_F_INV: u32 = 1;

// Attribute numbers, one enum per expression.
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;
const NFTA_DATA_VALUE: u16 = 1;
const NFTA_DATA_VERDICT: u16 = 2;
const NFTA_VERDICT_CODE: u16 = 1;
const NFTA_VERDICT_CHAIN: u16 = 2;
const NFTA_META_DREG: u16 = 1;
const NFTA_META_KEY: u16 = 2;
const NFTA_CMP_SREG: u16 = 1;
const NFTA_CMP_OP: u16 = 2;
const NFTA_CMP_DATA: u16 = 3;
const NFTA_PAYLOAD_DREG: u16 = 1;
const NFTA_PAYLOAD_BASE: u16 = 2;
const NFTA_PAYLOAD_OFFSET: u16 = 3;
const NFTA_PAYLOAD_LEN: u16 = 4;
const NFTA_BITWISE_SREG: u16 = 1;
const NFTA_BITWISE_DREG: u16 = 2;
const NFTA_BITWISE_LEN: u16 = 3;
const NFTA_BITWISE_MASK: u16 = 4;
const NFTA_BITWISE_XOR: u16 = 5;
const NFTA_LOOKUP_SET: u16 = 1;
const NFTA_LOOKUP_SREG: u16 = 2;
const NFTA_LOOKUP_DREG: u16 = 3;
const NFTA_LOOKUP_FLAGS: u16 = 5;
const NFTA_NG_DREG: u16 = 1;
const NFTA_NG_MODULUS: u16 = 2;
const NFTA_NG_TYPE: u16 = 3;
const NFTA_CT_DREG: u16 = 1;
const NFTA_CT_KEY: u16 = 2;
const NFTA_CT_DIRECTION: u16 = 3;
const NFTA_IMMEDIATE_DREG: u16 = 1;
const NFTA_IMMEDIATE_DATA: u16 = 2;
const NFTA_FIB_DREG: u16 = 1;
const NFTA_FIB_RESULT: u16 = 2;
const NFTA_FIB_FLAGS: u16 = 3;
const NFTA_NAT_TYPE: u16 = 1;
const NFTA_NAT_FAMILY: u16 = 2;
const NFTA_NAT_REG_ADDR_MIN: u16 = 3;
const NFTA_NAT_REG_PROTO_MIN: u16 = 5;

/// `NFT_FIB_RESULT_ADDRTYPE` with `NFTA_FIB_F_DADDR`: `fib daddr type`.
const NFT_FIB_RESULT_ADDRTYPE: u32 = 3;
const NFTA_FIB_F_DADDR: u32 = 2;
/// `RTN_LOCAL`: an address of this host.
pub(crate) const RTN_LOCAL: u32 = 2;
const NFT_NAT_SNAT: u32 = 0;
const NFT_NAT_DNAT: u32 = 1;
/// `NFT_NG_INCREMENTAL`: a counter, so N backends share connections evenly.
const NFT_NG_INCREMENTAL: u32 = 0;
/// `NFT_CT_DST_IP` and `IP_CT_DIR_ORIGINAL`: `ct original ip daddr`.
const NFT_CT_DST_IP: u32 = 20;
/// `NFT_CT_STATUS` and `IPS_DST_NAT`: `ct status dnat`.
const NFT_CT_STATUS: u32 = 2;
const IPS_DST_NAT: u32 = 1 << 5;
const IP_CT_DIR_ORIGINAL: u8 = 0;

/// One expression: its kernel name and its attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Expr {
    name: &'static str,
    data: Option<Attrs>,
}

impl Expr {
    fn new(name: &'static str, f: impl FnOnce(&mut Attrs)) -> Self {
        let mut a = Attrs::new();
        f(&mut a);
        Expr {
            name,
            data: Some(a),
        }
    }
}

/// Encode a rule's expression list (the value of NFTA_RULE_EXPRESSIONS).
pub(crate) fn encode_list(a: &mut Attrs, exprs: &[Expr]) {
    for e in exprs {
        a.nested(NFTA_LIST_ELEM, |el| {
            el.string(NFTA_EXPR_NAME, e.name);
            if let Some(d) = &e.data {
                el.nested(NFTA_EXPR_DATA, |x| {
                    x.raw(d.as_bytes());
                });
            }
        });
    }
}

/// Load a meta key (interface names, protocol family) into `reg`.
pub(crate) fn meta(key: u32, reg: u32) -> Expr {
    Expr::new("meta", |a| {
        a.be32(NFTA_META_DREG, reg).be32(NFTA_META_KEY, key);
    })
}

/// Compare `reg` with `data`.
pub(crate) fn cmp(op: u32, reg: u32, data: &[u8]) -> Expr {
    Expr::new("cmp", |a| {
        a.be32(NFTA_CMP_SREG, reg).be32(NFTA_CMP_OP, op);
        a.nested(NFTA_CMP_DATA, |d| {
            d.bytes(NFTA_DATA_VALUE, data);
        });
    })
}

/// Load `len` bytes at `offset` of a packet header into `reg`.
pub(crate) fn payload(base: u32, offset: u32, len: u32, reg: u32) -> Expr {
    Expr::new("payload", |a| {
        a.be32(NFTA_PAYLOAD_DREG, reg)
            .be32(NFTA_PAYLOAD_BASE, base)
            .be32(NFTA_PAYLOAD_OFFSET, offset)
            .be32(NFTA_PAYLOAD_LEN, len);
    })
}

/// `reg &= mask` (xor 0): how a prefix match is expressed.
pub(crate) fn mask(reg: u32, mask: &[u8]) -> Expr {
    let len = u32::try_from(mask.len()).unwrap_or(0);
    let zeros = vec![0u8; mask.len()];
    Expr::new("bitwise", |a| {
        a.be32(NFTA_BITWISE_SREG, reg)
            .be32(NFTA_BITWISE_DREG, reg)
            .be32(NFTA_BITWISE_LEN, len);
        a.nested(NFTA_BITWISE_MASK, |d| {
            d.bytes(NFTA_DATA_VALUE, mask);
        });
        a.nested(NFTA_BITWISE_XOR, |d| {
            d.bytes(NFTA_DATA_VALUE, &zeros);
        });
    })
}

/// Set membership of the key starting at `reg`; `invert` for "not in".
pub(crate) fn lookup(set: &str, reg: u32, invert: bool) -> Expr {
    Expr::new("lookup", |a| {
        a.string(NFTA_LOOKUP_SET, set).be32(NFTA_LOOKUP_SREG, reg);
        if invert {
            a.be32(NFTA_LOOKUP_FLAGS, NFT_LOOKUP_F_INV);
        }
    })
}

/// Packet and byte counters, so `nft list ruleset` shows what matched.
pub(crate) fn counter() -> Expr {
    Expr {
        name: "counter",
        data: None,
    }
}

pub(crate) fn masquerade() -> Expr {
    Expr {
        name: "masq",
        data: None,
    }
}

/// A verdict: accept, drop, or `jump`/`goto` with a chain.
pub(crate) fn verdict(code: i32, chain: Option<&str>) -> Expr {
    Expr::new("immediate", |a| {
        a.be32(NFTA_IMMEDIATE_DREG, REG_VERDICT);
        a.nested(NFTA_IMMEDIATE_DATA, |d| {
            d.nested(NFTA_DATA_VERDICT, |v| {
                v.be32(NFTA_VERDICT_CODE, code as u32);
                if let Some(c) = chain {
                    v.string(NFTA_VERDICT_CHAIN, c);
                }
            });
        });
    })
}

/// An interface name as the kernel compares it: 16 bytes, NUL padded.
pub(crate) fn ifname_bytes(name: &str) -> [u8; 16] {
    let mut b = [0u8; 16];
    for (d, s) in b.iter_mut().zip(name.as_bytes().iter().take(15)) {
        *d = *s;
    }
    b
}

/// `fib daddr type` into `reg` (a host-order u32 route type).
pub(crate) fn fib_daddr_type(reg: u32) -> Expr {
    Expr::new("fib", |a| {
        a.be32(NFTA_FIB_DREG, reg)
            .be32(NFTA_FIB_RESULT, NFT_FIB_RESULT_ADDRTYPE)
            .be32(NFTA_FIB_FLAGS, NFTA_FIB_F_DADDR);
    })
}

/// Load a constant into a data register.
pub(crate) fn immediate(reg: u32, data: &[u8]) -> Expr {
    Expr::new("immediate", |a| {
        a.be32(NFTA_IMMEDIATE_DREG, reg);
        a.nested(NFTA_IMMEDIATE_DATA, |d| {
            d.bytes(NFTA_DATA_VALUE, data);
        });
    })
}

/// `dnat <family> to` the address in `addr_reg` and the port in `port_reg`.
pub(crate) fn dnat(nfproto: u8, addr_reg: u32, port_reg: u32) -> Expr {
    Expr::new("nat", |a| {
        a.be32(NFTA_NAT_TYPE, NFT_NAT_DNAT)
            .be32(NFTA_NAT_FAMILY, u32::from(nfproto))
            .be32(NFTA_NAT_REG_ADDR_MIN, addr_reg)
            .be32(NFTA_NAT_REG_PROTO_MIN, port_reg);
    })
}

/// `numgen inc mod <modulus>` into `reg` (a host-order u32, 0..modulus).
pub(crate) fn numgen_inc(reg: u32, modulus: u32) -> Expr {
    Expr::new("numgen", |a| {
        a.be32(NFTA_NG_DREG, reg)
            .be32(NFTA_NG_MODULUS, modulus)
            .be32(NFTA_NG_TYPE, NFT_NG_INCREMENTAL);
    })
}

/// Map lookup: the value of the key at `sreg` in map `set` into `dreg`
/// (no match ends the rule).
pub(crate) fn map_lookup(set: &str, sreg: u32, dreg: u32) -> Expr {
    Expr::new("lookup", |a| {
        a.string(NFTA_LOOKUP_SET, set)
            .be32(NFTA_LOOKUP_SREG, sreg)
            .be32(NFTA_LOOKUP_DREG, dreg);
    })
}

/// `ct original ip daddr` into `reg`: where a connection was first sent,
/// before any DNAT.
pub(crate) fn ct_original_daddr_v4(reg: u32) -> Expr {
    Expr::new("ct", |a| {
        a.be32(NFTA_CT_DREG, reg).be32(NFTA_CT_KEY, NFT_CT_DST_IP);
        a.bytes(NFTA_CT_DIRECTION, &[IP_CT_DIR_ORIGINAL]);
    })
}

/// `dnat <family> to` the address in `addr_reg`, keeping the port.
pub(crate) fn dnat_addr(nfproto: u8, addr_reg: u32) -> Expr {
    Expr::new("nat", |a| {
        a.be32(NFTA_NAT_TYPE, NFT_NAT_DNAT)
            .be32(NFTA_NAT_FAMILY, u32::from(nfproto))
            .be32(NFTA_NAT_REG_ADDR_MIN, addr_reg);
    })
}

/// `snat <family> to` the address in `addr_reg`.
pub(crate) fn snat_addr(nfproto: u8, addr_reg: u32) -> Expr {
    Expr::new("nat", |a| {
        a.be32(NFTA_NAT_TYPE, NFT_NAT_SNAT)
            .be32(NFTA_NAT_FAMILY, u32::from(nfproto))
            .be32(NFTA_NAT_REG_ADDR_MIN, addr_reg);
    })
}

/// `ct status dnat`: the connection's destination was translated.
pub(crate) fn ct_status_dnat(reg: u32) -> [Expr; 3] {
    [
        Expr::new("ct", |a| {
            a.be32(NFTA_CT_DREG, reg).be32(NFTA_CT_KEY, NFT_CT_STATUS);
        }),
        mask(reg, &IPS_DST_NAT.to_ne_bytes()),
        cmp(CMP_NEQ, reg, &0u32.to_ne_bytes()),
    ]
}
