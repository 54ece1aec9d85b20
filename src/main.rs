use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{anyhow, bail};
use clap::{CommandFactory, Parser, Subcommand};
use tandem::admin::client::Target;
use tracing_subscriber::EnvFilter;

mod generate;

/// The version and the commit it was built from (see build.rs): what a bug report needs.
const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("TANDEM_COMMIT"), ")");

/// tandem: an L4/L7 reverse proxy and a VRRP engine in one binary.
#[derive(Parser)]
#[command(version = VERSION, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the appliance in the foreground.
    Run {
        #[arg(long, short, default_value = "/etc/tandem/tandem.yaml")]
        config: PathBuf,
    },
    /// Validate a config file and report every error found.
    Check {
        /// The config file, as `--config` names it: `tandem check /etc/tandem/tandem.yaml`.
        #[arg(value_name = "FILE", conflicts_with = "config")]
        file: Option<PathBuf>,
        #[arg(long, short, default_value = "/etc/tandem/tandem.yaml")]
        config: PathBuf,
    },
    /// Show what a running tandem is doing: VRRP, frontends, backends and servers.
    Status {
        /// The config of the running tandem, to find its `admin.listen` address.
        #[arg(long, short, default_value = "/etc/tandem/tandem.yaml")]
        config: PathBuf,
        /// The admin address to ask, instead of the one in the config.
        #[arg(long, conflicts_with = "socket")]
        admin: Option<SocketAddr>,
        /// The admin unix socket (`admin.socket`) to ask instead: it reaches a tandem in
        /// another network namespace.
        #[arg(long)]
        socket: Option<PathBuf>,
        /// Print the JSON as `/status` serves it.
        #[arg(long)]
        json: bool,
    },
    /// Change a running tandem through its runtime API (drain a server, resign a VIP...), or
    /// show its state.
    Ctl(tandem::ctl::Ctl),
    /// Write the man pages and the shell completions, generated from this command line, into
    /// a directory (for packaging: deploy/build-deb.sh).
    #[command(hide = true)]
    Generate {
        /// The directory to write `man/` and `completions/` into.
        #[arg(long)]
        out: PathBuf,
    },
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Check { file, config } => {
            let config = file.unwrap_or(config);
            let errors = match tandem::config::load_with_source(&config) {
                // The files a config names are part of it: a certificate that won't load would
                // fail start-up or a reload just the same.
                Ok((loaded, source)) => certificate_errors(&loaded, &source),
                Err(errors) => errors.0,
            };
            if errors.is_empty() {
                println!("{}: ok", config.display());
                return ExitCode::SUCCESS;
            }
            for error in &errors {
                eprintln!("{error}");
            }
            eprintln!("{}: {} error(s)", config.display(), errors.len());
            ExitCode::FAILURE
        }
        Command::Status {
            config,
            admin,
            socket,
            json,
        } => match status(&config, Target::from_flags(admin, socket), json) {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("tandem status: {error:#}");
                ExitCode::FAILURE
            }
        },
        Command::Ctl(ctl) => tandem::ctl::run(ctl),
        Command::Run { config: path } => {
            let config = match tandem::config::load(&path) {
                Ok(config) => config,
                Err(errors) => {
                    eprintln!("{errors}");
                    eprintln!("{}: not started", path.display());
                    return ExitCode::FAILURE;
                }
            };
            init_logging(config.log_level.as_deref());
            match tandem::appliance::run(config, &path) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    tracing::error!("{error:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Generate { out } => match generate::write(Cli::command(), &out) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("tandem generate: {error:#}");
                ExitCode::FAILURE
            }
        },
    }
}

/// Every certificate or key file of `config` that won't load, at the field that names it.
fn certificate_errors(
    config: &tandem::config::Config,
    source: &tandem::config::Source,
) -> Vec<tandem::config::ConfigError> {
    let mut errors = Vec::new();
    for (index, frontend) in config.frontends.iter().enumerate() {
        let Some(tls) = &frontend.tls else { continue };
        for (pair, files) in tls.certificates.iter().enumerate() {
            let Err(error) = tandem::tls::load(files) else {
                continue;
            };
            let mut field = format!("frontends[{index}].tls.certificates[{pair}]");
            if let tandem::tls::TlsError::File { role, .. } = &error {
                field = format!("{field}.{}", role.key());
            }
            errors.push(source.error(field, error.to_string()));
        }
        for error in tandem::tls::settings_errors(tls) {
            let mut field = format!("frontends[{index}].tls");
            if let tandem::tls::TlsError::File { role, .. } = &error {
                field = format!("{field}.{}", role.key());
            }
            errors.push(source.error(field, error.to_string()));
        }
    }
    // TLS to servers: the first file of each backend that won't load, at the key naming it.
    for (index, backend) in config.backends.iter().enumerate() {
        if let Err(error) = tandem::tls::upstream::for_backend(backend) {
            let field = format!("backends[{index}].{}", error.field);
            let message = format!("server {}: {}", error.server, error.error);
            errors.push(source.error(field, message));
        }
    }
    errors
}

/// Asks `target`, or the `admin.listen` address `config` names, for the status.
fn status(config: &Path, target: Option<Target>, json: bool) -> anyhow::Result<String> {
    let target = match target {
        Some(target) => target,
        None => {
            let loaded = tandem::config::load(config).map_err(|errors| {
                anyhow!(
                    "{errors}\n{}: no admin address without a valid config; pass --admin ADDRESS \
                     or --socket PATH",
                    config.display()
                )
            })?;
            let Some(admin) = loaded.admin else {
                bail!(
                    "{} has no admin section: add `admin: {{ listen: 127.0.0.1:9900 }}`, or pass --admin or --socket",
                    config.display()
                );
            };
            Target::Tcp(admin.listen)
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let status = runtime.block_on(tandem::admin::fetch_status(&target))?;
    Ok(match json {
        true => serde_json::to_string_pretty(&status)? + "\n",
        false => status.to_string(),
    })
}

/// RUST_LOG wins over the config's `log.level`, so an operator can turn up one run.
fn init_logging(config_level: Option<&str>) {
    let filter = EnvFilter::try_from_default_env()
        .ok()
        .or_else(|| config_level.and_then(|level| EnvFilter::try_new(level).ok()))
        .unwrap_or_else(|| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

/// mimalloc: per-thread free lists suit a proxy's many small, short-lived allocations
/// (header maps, buffers, tasks) better than glibc's arenas. Its v2 (a Cargo feature): the
/// crate asks for every block with mi_malloc_aligned, and v3 serves a block whose size is not
/// a power of two through an over-allocating slow path whenever its page's free list is empty
/// or the block is over 1 KiB (7 times per request here).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
