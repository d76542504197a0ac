use std::process::ExitCode;

fn main() -> ExitCode {
    match authmd::run_cli(std::env::args_os().skip(1).collect()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            if !err.message.is_empty() {
                eprintln!("authmd: {}", err.message);
            }
            ExitCode::from(err.status)
        }
    }
}
