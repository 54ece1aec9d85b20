//! Listening sockets: one per worker thread and frontend, sharing the address with SO_REUSEPORT
//! so the kernel spreads connections over the workers without a shared accept lock.

use std::io;
use std::net::{SocketAddr, TcpListener};

use socket2::{Domain, Protocol, Socket, Type};

const BACKLOG: i32 = 4096;

/// Binds `count` listeners on `address`. IP_FREEBIND lets a backup node listen on a VIP it does
/// not hold yet, with no sysctl.
pub fn bind(address: SocketAddr, count: usize) -> io::Result<Vec<TcpListener>> {
    // SO_REUSEPORT would let us silently share the port with another process of the same user:
    // an exclusive bind first proves nobody else holds it.
    drop(socket(address, false)?);
    (0..count).map(|_| socket(address, true)).collect()
}

fn socket(address: SocketAddr, listen: bool) -> io::Result<TcpListener> {
    let socket = Socket::new(
        Domain::for_address(address),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    if address.is_ipv6() {
        socket.set_only_v6(true)?;
        socket.set_freebind_v6(true)?;
    } else {
        socket.set_freebind_v4(true)?;
    }
    if listen {
        socket.set_reuse_port(true)?;
    }
    // Small requests and responses must not wait for Nagle. Accepted sockets inherit it from
    // here, which saves a setsockopt(2) per client.
    socket.set_tcp_nodelay(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&address.into())?;
    if listen {
        socket.listen(BACKLOG)?;
    }
    Ok(socket.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_an_address_this_host_does_not_hold() {
        // 192.0.2.0/24 is documentation space: never assigned here, only bound, no traffic.
        let listeners = bind("192.0.2.77:0".parse().unwrap(), 1).unwrap();
        assert_eq!(
            listeners[0].local_addr().unwrap().ip().to_string(),
            "192.0.2.77"
        );
    }

    #[test]
    fn accepted_clients_have_nagle_off() {
        let listeners = bind("127.0.0.1:0".parse().unwrap(), 1).unwrap();
        let client = std::net::TcpStream::connect(listeners[0].local_addr().unwrap()).unwrap();
        listeners[0].set_nonblocking(false).unwrap();
        let (accepted, _) = listeners[0].accept().unwrap();
        assert!(accepted.nodelay().unwrap());
        drop(client);
    }

    #[test]
    fn workers_share_one_port_but_another_binder_is_refused() {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = probe.local_addr().unwrap();
        drop(probe);
        let listeners = bind(address, 3).unwrap();
        assert_eq!(listeners.len(), 3);
        let error = bind(address, 1).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::AddrInUse);
    }
}
