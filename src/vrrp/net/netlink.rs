//! The route-netlink connection that interface lookups and VIP changes go through.

use std::io;

/// A route-netlink connection in the network namespace of the thread that opened it.
///
/// Cloning is cheap and shares the connection.
#[derive(Clone)]
pub struct Netlink {
    handle: rtnetlink::Handle,
}

impl Netlink {
    /// Opens the connection and spawns the task that drives it on the current tokio runtime.
    pub fn connect() -> io::Result<Self> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            io::Error::other("netlink: Netlink::connect must be called inside a tokio runtime")
        })?;
        let (connection, handle, _unsolicited) = rtnetlink::new_connection()?;
        runtime.spawn(connection);
        Ok(Netlink { handle })
    }

    pub(super) fn handle(&self) -> &rtnetlink::Handle {
        &self.handle
    }
}

/// The errno the kernel answered with, so callers can tell "already there" or "not there" from
/// real failures.
pub(super) fn kernel_errno(error: &rtnetlink::Error) -> Option<i32> {
    match error {
        rtnetlink::Error::NetlinkError(message) => message.to_io().raw_os_error(),
        _ => None,
    }
}
