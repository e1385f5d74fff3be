//! The `twofactor` binary: parse the command line and hand over to the library.

use std::process::ExitCode;

use clap::Parser;
use twofactor::cli::{Cli, Command};
use twofactor::clock::Clock;
use twofactor::startup::App;

// A request allocates and frees dozens of small buffers (the body, the JSON,
// rows, the response). With glibc's malloc that was 13% of the server's CPU
// on /login-2fa; with mimalloc the allocator is 6% of a smaller total, and a
// login costs the server about a sixth less CPU (BENCHMARKS.md, session 12).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(config) => serve(*config).await,
        Command::Code(args) => {
            let now = u64::try_from(Clock::system().now()).unwrap_or(0);
            args.code_at(now).map(|code| println!("{code}"))
        }
        Command::User(command) => twofactor::admin::user(command).await,
        Command::Audit(args) => twofactor::admin::audit(args).await,
        Command::Migrate(config) => twofactor::admin::migrate(&config).await,
        Command::RotateKey(args) => twofactor::admin::rotate_key(args).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: twofactor::config::Config) -> anyhow::Result<()> {
    twofactor::telemetry::init(config.log_format);
    let app = App::build(config).await?;
    let addr = app.local_addr();
    tracing::info!(%addr, "listening");
    // A plain line on stdout that scripts can wait for.
    println!("listening on http://{addr}");
    app.run().await
}
