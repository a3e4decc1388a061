//! Entry point: parses the command line, sets up logging and hands over to the library.
//! Exit codes are those of `upgrade_guard::cli::exit`: a verdict, or an error's own code.

use clap::Parser;

use clap::error::ErrorKind;
use tracing_subscriber::EnvFilter;
use upgrade_guard::cli::{self, Args, CliError, Command, LogFormat, exit};

#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn init_logging(args: &Args) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&args.log_level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only on a terminal: log files and journald get plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match args.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn run(args: Args) -> Result<i32, CliError> {
    match &args.command {
        Command::Config(c) if c.is_live() => {
            cli::config::run_live(cli::kube_client(&args).await?, c).await
        }
        Command::Config(c) => Ok(cli::config::run(c)),
        Command::Version(a) => cli::version::run(a).await,
        Command::Completion(a) => Ok(cli::completion::run(
            a,
            <Args as clap::CommandFactory>::command(),
        )),
        Command::Check(a) => cli::check::run(cli::kube_client(&args).await?, a).await,
        Command::History(a) => cli::history::run(cli::kube_client(&args).await?, a).await,
        Command::Suspend(a) => cli::control::suspend(cli::kube_client(&args).await?, a).await,
        Command::Replay(a) => cli::replay::run(cli::kube_client(&args).await?, a).await,
        Command::Resume(a) => cli::control::resume(cli::kube_client(&args).await?, a).await,
        Command::Accept(a) => cli::control::accept(cli::kube_client(&args).await?, a).await,
        Command::Recheck(a) => cli::control::recheck(cli::kube_client(&args).await?, a).await,
        Command::Watch(a) => cli::watch::run(cli::kube_config(&args).await?, a).await,
        Command::Preflight(a) => cli::preflight::run(cli::kube_client(&args).await?, a).await,
        Command::Status(a) => {
            let client = match a.url {
                Some(_) => None,
                None => Some(cli::kube_client(&args).await?),
            };
            cli::status::run(client, a).await
        }
        Command::Run(a) => {
            cli::run::run(cli::kube_config(&args).await?, cli::helm_args(&args), a).await
        }
    }
}

#[tokio::main]
async fn main() {
    let args = match Args::try_parse() {
        Ok(args) => args,
        Err(e) => {
            let _ = e.print();
            // clap's own code for a usage error is 2, which is a verdict here.
            let code = match e.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => exit::HEALTHY,
                _ => exit::USAGE,
            };
            std::process::exit(code);
        }
    };
    init_logging(&args);
    let code = match run(args).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    };
    std::process::exit(code);
}
