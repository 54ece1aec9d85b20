//! Addresses as text, on the stack and IPv4 written by hand: once per client connection
//! (X-Forwarded-For and the access log's client) or tcp session, where the formatting machinery
//! and a growing buffer cost more than the rest of the work. The text is exactly what `Display`
//! writes.

use std::fmt::{self, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// The longest socket address `Display` writes: `[`, eight groups of four hex digits with seven
/// colons (39), a scope id (`%` and 10 digits), `]:` and a 5-digit port.
const LONGEST: usize = 58;

/// An address's text.
pub struct AddressText {
    bytes: [u8; LONGEST],
    len: usize,
}

impl AddressText {
    fn new() -> AddressText {
        AddressText {
            bytes: [0; LONGEST],
            len: 0,
        }
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..self.len]).expect("only ASCII is written")
    }

    fn push(&mut self, byte: u8) {
        self.bytes[self.len] = byte;
        self.len += 1;
    }

    fn push_ipv4(&mut self, ip: Ipv4Addr) {
        for (index, octet) in ip.octets().into_iter().enumerate() {
            if index > 0 {
                self.push(b'.');
            }
            if octet >= 100 {
                self.push(b'0' + octet / 100);
            }
            if octet >= 10 {
                self.push(b'0' + octet / 10 % 10);
            }
            self.push(b'0' + octet % 10);
        }
    }
}

impl Write for AddressText {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        let end = self.len + text.len();
        (self.bytes.get_mut(self.len..end).ok_or(fmt::Error)?).copy_from_slice(text.as_bytes());
        self.len = end;
        Ok(())
    }
}

pub fn ip(ip: IpAddr) -> AddressText {
    let mut text = AddressText::new();
    match ip {
        IpAddr::V4(ip) => text.push_ipv4(ip),
        IpAddr::V6(ip) => write!(text, "{ip}").expect("an IPv6 address fits"),
    }
    text
}

pub fn socket_address(address: SocketAddr) -> AddressText {
    let mut text = AddressText::new();
    match address {
        SocketAddr::V4(address) => {
            text.push_ipv4(*address.ip());
            text.push(b':');
            for &digit in itoa::Buffer::new().format(address.port()).as_bytes() {
                text.push(digit);
            }
        }
        SocketAddr::V6(address) => write!(text, "{address}").expect("a socket address fits"),
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_written_as_display_writes_them() {
        for address in [
            "0.0.0.0:0",
            "192.0.2.10:65535",
            "10.100.9.255:8080",
            "255.255.255.255:8080",
            "[::1]:443",
            "[2001:db8::7%3]:9",
            "[::ffff:192.0.2.1]:80",
            "[ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255%4294967295]:65535",
        ] {
            let address: SocketAddr = address.parse().unwrap();
            assert_eq!(socket_address(address).as_str(), address.to_string());
            assert_eq!(ip(address.ip()).as_str(), address.ip().to_string());
        }
    }
}
