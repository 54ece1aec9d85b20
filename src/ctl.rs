//! `tandem ctl`: the runtime API from the command line, over the admin address (with the
//! token) or the unix socket. Exit codes: 0 done, 1 refused by tandem (unknown name, bad
//! value), 2 a usage mistake, 3 tandem not reachable, 4 not authorized (401, 403).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use http::{Method, StatusCode};

use crate::admin::client::{self, Target};
use crate::status::Status;

#[derive(Args)]
#[command(group = clap::ArgGroup::new("target").required(true).args(["admin", "socket"]))]
pub struct Ctl {
    /// The admin address of the running tandem (`admin.listen`).
    #[arg(long)]
    admin: Option<SocketAddr>,
    /// The file holding the bearer token (`admin.token_file`): changes over --admin need it.
    #[arg(long, requires = "admin")]
    token_file: Option<PathBuf>,
    /// The admin unix socket (`admin.socket`); its file permissions are the authentication.
    #[arg(long)]
    socket: Option<PathBuf>,
    #[command(subcommand)]
    command: CtlCommand,
}

#[derive(Subcommand)]
enum CtlCommand {
    /// Set a server's state or weight.
    Server {
        #[command(subcommand)]
        command: ServerCommand,
    },
    /// Stop or resume accepting clients on a frontend.
    Frontend {
        #[command(subcommand)]
        command: FrontendCommand,
    },
    /// Hand a VIP over to the peer, or keep this node backup.
    Vrrp {
        #[command(subcommand)]
        command: VrrpCommand,
    },
    /// Withdraw this node's announced addresses from the routers, or announce them again.
    Announce {
        #[command(subcommand)]
        command: AnnounceCommand,
    },
    /// Show what the running tandem is doing, as `tandem status` does.
    Show {
        /// Print the JSON as `/status` serves it.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum ServerCommand {
    /// ready: normal; drain: no new sessions (pinned clients stay); maint: no traffic, no checks.
    SetState {
        /// BACKEND/SERVER
        server: String,
        #[arg(value_parser = ["ready", "drain", "maint"])]
        state: String,
    },
    /// A weight from 0 (no new sessions) to 256, over the file's until the file changes the server.
    SetWeight {
        /// BACKEND/SERVER
        server: String,
        weight: u32,
    },
}

#[derive(Subcommand)]
enum FrontendCommand {
    /// Accept clients again.
    Enable { name: String },
    /// Close the listeners: new clients are refused, open connections finish.
    Disable { name: String },
}

#[derive(Subcommand)]
enum VrrpCommand {
    /// A planned handover: go backup now and do not preempt back while the peer is master.
    Resign { instance: String },
    /// on: stay backup whatever happens; off: back to normal (also ends a resign).
    Maintenance { instance: String, mode: OnOff },
}

#[derive(Subcommand)]
enum AnnounceCommand {
    /// Withdraw, and return once no new connection has arrived for `withdraw.quiet`: the
    /// routers have moved new flows away. Open connections go on.
    Drain,
    /// Announce again as soon as every tracked item is healthy.
    Ready,
}

/// How long `announce drain` may wait: `withdraw.max_wait` is at most 5 minutes.
const DRAIN_WAIT: Duration = Duration::from_secs(330);

#[derive(Clone, Copy, ValueEnum)]
enum OnOff {
    On,
    Off,
}

/// Why a call failed, and so the exit code.
struct Failure {
    code: u8,
    message: String,
}

fn failure(code: u8, message: impl Into<String>) -> Failure {
    Failure {
        code,
        message: message.into(),
    }
}

/// Runs `ctl`, printing what changed (or the state) on stdout and errors on stderr.
pub fn run(ctl: Ctl) -> ExitCode {
    match call(ctl) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(failure) => {
            eprintln!("tandem ctl: {}", failure.message);
            ExitCode::from(failure.code)
        }
    }
}

fn call(ctl: Ctl) -> Result<String, Failure> {
    let Some(target) = Target::from_flags(ctl.admin, ctl.socket) else {
        return Err(failure(2, "give --admin ADDRESS or --socket PATH"));
    };
    let token = match &ctl.token_file {
        Some(file) => {
            let text = std::fs::read_to_string(file)
                .map_err(|error| failure(2, format!("--token-file {}: {error}", file.display())))?;
            Some(text.trim().to_owned())
        }
        None => None,
    };
    let mut wait = client::CALL_TIMEOUT;
    let (method, path, body) = match ctl.command {
        CtlCommand::Show { json } => return show(&target, json),
        CtlCommand::Server { command } => match command {
            ServerCommand::SetState { server, state } => {
                (Method::PUT, server_path(&server, "state")?, state)
            }
            ServerCommand::SetWeight { server, weight } => (
                Method::PUT,
                server_path(&server, "weight")?,
                weight.to_string(),
            ),
        },
        CtlCommand::Frontend { command } => match command {
            FrontendCommand::Enable { name } => (
                Method::PUT,
                format!("/api/frontends/{name}/state"),
                "enabled".into(),
            ),
            FrontendCommand::Disable { name } => (
                Method::PUT,
                format!("/api/frontends/{name}/state"),
                "disabled".into(),
            ),
        },
        CtlCommand::Vrrp { command } => match command {
            VrrpCommand::Resign { instance } => (
                Method::POST,
                format!("/api/vrrp/{instance}/resign"),
                String::new(),
            ),
            VrrpCommand::Maintenance { instance, mode } => {
                let mode = match mode {
                    OnOff::On => "on",
                    OnOff::Off => "off",
                };
                (
                    Method::PUT,
                    format!("/api/vrrp/{instance}/maintenance"),
                    mode.into(),
                )
            }
        },
        CtlCommand::Announce { command } => {
            let state = match command {
                AnnounceCommand::Drain => {
                    wait = DRAIN_WAIT;
                    "drain"
                }
                AnnounceCommand::Ready => "ready",
            };
            (Method::PUT, "/api/announce/state".into(), state.into())
        }
    };
    let (status, text) = request(&target, (method, &path, &body), token.as_deref(), wait)?;
    match status {
        StatusCode::OK => Ok(text),
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
            Err(failure(4, format!("{status}: {}", text.trim_end())))
        }
        _ => Err(failure(1, format!("{status}: {}", text.trim_end()))),
    }
}

fn server_path(server: &str, what: &str) -> Result<String, Failure> {
    match server.split_once('/') {
        Some((backend, server)) if !backend.is_empty() && !server.is_empty() => {
            Ok(format!("/api/servers/{backend}/{server}/{what}"))
        }
        _ => Err(failure(
            2,
            format!("{server:?}: name a server as BACKEND/SERVER"),
        )),
    }
}

fn show(target: &Target, json: bool) -> Result<String, Failure> {
    let (status, text) = request(
        target,
        (Method::GET, "/status", ""),
        None,
        client::CALL_TIMEOUT,
    )?;
    if status != StatusCode::OK {
        return Err(failure(1, format!("{status}: {}", text.trim_end())));
    }
    if json {
        return Ok(text + "\n");
    }
    let status: Status = serde_json::from_str(&text).map_err(|error| {
        failure(
            1,
            format!("reading the status from {target}: {error}: is it a tandem of this version?"),
        )
    })?;
    Ok(status.to_string())
}

fn request(
    target: &Target,
    call: (Method, &str, &str),
    token: Option<&str>,
    wait: Duration,
) -> Result<(StatusCode, String), Failure> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| failure(1, error.to_string()))?;
    (runtime.block_on(client::call(target, call, token, wait)))
        .map_err(|error| failure(3, format!("{error:#}")))
}
