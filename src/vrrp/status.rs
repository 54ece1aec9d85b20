//! What an instance publishes about itself for `/status`, `tandem status` and the gauges: owned
//! here, read by the status model, which never writes it.

use std::net::IpAddr;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::config::VrrpInstance;
use crate::vrrp::machine::State;

/// One VRRP instance as its task last published it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VrrpStatus {
    pub name: String,
    pub vrid: u8,
    pub interface: String,
    pub state: String,
    pub priority: u8,
    pub effective_priority: u8,
    pub virtual_ips: Vec<String>,
    /// The Master this node sees: itself, its peer, or none known.
    pub master: Option<IpAddr>,
    /// What an operator asked of it: `normal`, `resigned` (handed over, not preempting back)
    /// or `maintenance` (staying backup).
    #[serde(default)]
    pub mode: String,
}

impl VrrpStatus {
    pub fn new(config: &VrrpInstance) -> VrrpStatus {
        VrrpStatus {
            name: config.name.clone(),
            vrid: config.virtual_router_id,
            interface: config.interface.clone(),
            state: State::Initialize.label().into(),
            priority: config.priority,
            effective_priority: config.priority,
            virtual_ips: virtual_ips(config),
            master: None,
            mode: crate::vrrp::machine::Mode::Normal.label().into(),
        }
    }
}

pub fn virtual_ips(config: &VrrpInstance) -> Vec<String> {
    (config.virtual_ips.iter())
        .map(|vip| format!("{}/{}", vip.address, vip.prefix_len))
        .collect()
}

pub fn lock(status: &Mutex<VrrpStatus>) -> std::sync::MutexGuard<'_, VrrpStatus> {
    status
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
