//! `coordctl`: the operator's client. Parses the command line and hands over to the
//! library; see `coordctl --help`.

use clap::Parser;

#[tokio::main]
async fn main() {
    let cli = coordctl::Cli::parse();
    if let Err(e) = coordctl::run(cli).await {
        eprintln!("lỗi (error): {e:#}");
        std::process::exit(1);
    }
}
