//! Addresses as text, IPv4 written by hand: once per client connection (X-Forwarded-For and
//! the access log's client) or tcp session, where the formatting machinery costs more than the
//! rest of the work. The output is exactly what `Display` writes.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

pub fn write_ip(ip: IpAddr, out: &mut Vec<u8>) {
    match ip {
        IpAddr::V4(ip) => write_ipv4(ip, out),
        IpAddr::V6(ip) => {
            let _ = write!(out, "{ip}");
        }
    }
}

fn write_socket_address(address: SocketAddr, out: &mut Vec<u8>) {
    match address {
        SocketAddr::V4(address) => {
            write_ipv4(*address.ip(), out);
            out.push(b':');
            out.extend_from_slice(itoa::Buffer::new().format(address.port()).as_bytes());
        }
        SocketAddr::V6(_) => {
            let _ = write!(out, "{address}");
        }
    }
}

pub fn socket_address(address: SocketAddr) -> String {
    let mut text = Vec::with_capacity(24);
    write_socket_address(address, &mut text);
    String::from_utf8(text).expect("an address is ASCII")
}

fn write_ipv4(ip: Ipv4Addr, out: &mut Vec<u8>) {
    let mut buffer = itoa::Buffer::new();
    for (index, octet) in ip.octets().into_iter().enumerate() {
        if index > 0 {
            out.push(b'.');
        }
        out.extend_from_slice(buffer.format(octet).as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_written_as_display_writes_them() {
        for address in [
            "0.0.0.0:0",
            "192.0.2.10:65535",
            "255.255.255.255:8080",
            "[::1]:443",
            "[2001:db8::7%3]:9",
            "[::ffff:192.0.2.1]:80",
        ] {
            let address: SocketAddr = address.parse().unwrap();
            assert_eq!(socket_address(address), address.to_string());
            let mut out = Vec::new();
            write_ip(address.ip(), &mut out);
            assert_eq!(String::from_utf8(out).unwrap(), address.ip().to_string());
        }
    }
}
