//! The `cofre` binary: parse, dispatch, map errors to exit codes (see README).

fn main() -> std::process::ExitCode {
    match cofre::cli::run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        // The reader went away (`cofre decrypt x | head`): not a failure.
        Err(e) if e.is_broken_pipe() => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // Messages can quote a file's bytes (an ARN in a header): never raw control codes.
            eprintln!("cofre: {}", cofre::cli::printable(&e.to_string()));
            std::process::ExitCode::from(e.exit_code() as u8)
        }
    }
}
