//! Entry point: parses the command line and hands over to the library.

use clap::Parser;
use upgrade_guard::cli::Args;

fn main() {
    let _args = Args::parse();
}
