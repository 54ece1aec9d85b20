use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

/// tandem: an L4/L7 reverse proxy and a VRRP engine in one binary.
#[derive(Parser)]
#[command(version, about)]
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
        #[arg(long, short, default_value = "/etc/tandem/tandem.yaml")]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Check { config } => match tandem::config::load(&config) {
            Ok(_) => {
                println!("{}: ok", config.display());
                ExitCode::SUCCESS
            }
            Err(errors) => {
                eprintln!("{errors}");
                eprintln!("{}: {} error(s)", config.display(), errors.0.len());
                ExitCode::FAILURE
            }
        },
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
    }
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
