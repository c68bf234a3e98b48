//! The `vibex` command line: `run`, `migrate`, `config check`, `indicators --csv FILE`,
//! `keys new --name NAME --role ROLE [--accounts a,b]`.
//! `--config FILE` and `--accounts FILE` work with every subcommand.
//!
//! Exit codes: 0 success, 1 runtime failure, 2 invalid configuration or input.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use vibex::config::{self, LoadOptions, Settings};

/// mimalloc: the API's list answers and the trading loop allocate many small,
/// short-lived values across threads; with it a 100-row list costs about a fifth less
/// CPU than with glibc's allocator (benches/read_path).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// vibex: trades crypto perpetual futures for many accounts at once.
#[derive(Parser, Debug)]
#[command(name = "vibex", version, about)]
struct Cli {
    /// Settings file (default: vibex.toml in the working directory, if present).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Accounts file (default: accounts.yaml in the working directory, if present).
    /// With `keys new`: the only accounts the new key sees, comma-separated (a1,a2).
    #[arg(long, global = true, value_name = "FILE")]
    accounts: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the daemon until SIGTERM/SIGINT.
    Run,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Inspect the configuration.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Manage API keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Compute the indicators over a CSV of candles and print them as JSON.
    Indicators {
        /// CSV with timestamp,open,high,low,close,volume columns.
        #[arg(long, value_name = "FILE")]
        csv: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
enum ConfigCommand {
    /// Validate exactly as `run` does and print the resolved configuration, secrets
    /// masked; stderr says which accounts are live. Exits non-zero on any error.
    Check,
}

#[derive(Subcommand, Debug)]
enum KeysCommand {
    /// Make a fresh API key: prints the key alone on the first line, then the entry to
    /// paste under `api:` → `keys:` (it holds only the key's SHA-256). `--accounts a,b`
    /// limits the key to those accounts (every account when absent).
    New {
        /// The key's name, written in logs and the audit trail instead of the key.
        #[arg(long)]
        name: String,
        /// read, trade or admin.
        #[arg(long)]
        role: String,
    },
}

/// Where the configuration is read from (again on SIGHUP and `POST /config/reload`).
fn load_options(cli: &Cli) -> LoadOptions {
    LoadOptions {
        config_file: cli.config.clone(),
        accounts_file: cli.accounts.clone(),
        dotenv_file: None,
    }
}

fn load(cli: &Cli) -> Result<Settings, ExitCode> {
    let settings = config::load(&load_options(cli)).map_err(|e| {
        eprintln!("error: invalid configuration:");
        for problem in e.problems() {
            eprintln!("  {problem}");
        }
        ExitCode::from(2)
    })?;
    vibex::app::preflight(&settings).map_err(|problems| {
        eprintln!("error: invalid configuration:");
        for problem in problems {
            eprintln!("  {problem}");
        }
        ExitCode::from(2)
    })?;
    Ok(settings)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match &cli.command {
        Command::Run => {
            let settings = match load(&cli) {
                Ok(s) => s,
                Err(code) => return code,
            };
            match vibex::app::run_reloadable(settings, Some(load_options(&cli))) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Migrate => {
            let settings = match load(&cli) {
                Ok(s) => s,
                Err(code) => return code,
            };
            match vibex::app::migrate(&settings) {
                Ok(applied) if applied.is_empty() => {
                    println!("database schema is up to date");
                    ExitCode::SUCCESS
                }
                Ok(applied) => {
                    for m in applied {
                        println!("applied {m}");
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Config {
            command: ConfigCommand::Check,
        } => {
            let settings = match load(&cli) {
                Ok(s) => s,
                Err(code) => return code,
            };
            let json = settings.masked_json();
            match serde_json::to_string_pretty(&json) {
                Ok(text) => {
                    println!("{text}");
                    eprintln!(
                        "configuration is valid: {} account(s) ({})",
                        settings.accounts.len(),
                        settings
                            .accounts
                            .iter()
                            .map(|a| format!("{} {}", a.id, a.mode.as_str()))
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                    for banner in settings.accounts.iter().filter_map(|a| a.live_banner()) {
                        eprintln!("{banner}");
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        // `--accounts` is the global flag (a file elsewhere); here it is the key's scope.
        Command::Keys {
            command: KeysCommand::New { name, role },
        } => match cli
            .accounts
            .as_ref()
            .map(|scope| {
                scope
                    .to_str()
                    .ok_or_else(|| "--accounts: account ids are text".to_string())
            })
            .transpose()
            .and_then(|scope| vibex::commands::new_key(name, role, scope))
        {
            Ok(made) => {
                println!("{}", made.key);
                print!("{}", made.yaml_item);
                eprintln!(
                    "The first line is the key: hand it to its client now, it is shown only \
                     once. The lines after it go under `api:` -> `keys:` of accounts.yaml (or \
                     vibex.toml as [[api.keys]]); they hold only the key's SHA-256. Restart \
                     vibex to use it."
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        },
        Command::Indicators { csv } => {
            let file = match std::fs::File::open(csv) {
                Ok(f) => f,
                Err(e) => {
                    eprintln!("error: cannot read {}: {e}", csv.display());
                    return ExitCode::from(2);
                }
            };
            match vibex::commands::indicators_json(std::io::BufReader::new(file)) {
                Ok(json) => {
                    println!("{json}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {}: {e}", csv.display());
                    ExitCode::from(2)
                }
            }
        }
    }
}
