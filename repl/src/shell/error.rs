//! What goes wrong in the shell: the connection, the server's answer, or how it was used.

use rustyline::error::ReadlineError;

#[derive(Debug, thiserror::Error)]
pub enum ShellError {
    #[error("{0}")]
    Connection(String),
    #[error("{0}")]
    Server(String),
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("the prompt failed: {0}")]
    Prompt(#[from] ReadlineError),
}
