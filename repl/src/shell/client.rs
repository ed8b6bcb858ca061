//! A line-protocol client: requests and their replies, and pushed lines handed to a sink.
//!
//! A reader thread takes every line the server sends. Replies (lines with `ok`) go back to
//! the request waiting for them, in order; everything else (subscription rows, notices) is
//! handed to the sink in runs: the lines that arrived together are passed at once, so they
//! can be shown as one table.

use std::io::{BufRead, BufReader, Write};
use std::sync::mpsc;

use serde_json::Value;
use sluice_server::protocol::{Auth, Op, Pushed, ReplyLine, Request, RequestLine, ServerLine};

use super::display::row_columns;
use super::error::ShellError;
use super::transport::{self, TlsTrust};

/// A line the server pushed, with the columns of its row in the order they came.
pub struct PushedLine {
    pub pushed: Pushed,
    pub columns: Vec<String>,
}

pub struct Client {
    writer: Box<dyn Write + Send>,
    replies: mpsc::Receiver<ReplyLine>,
    next_id: u64,
}

impl Client {
    /// Connects to `address`, over TLS when `tls` says whom to trust; pushed lines go to
    /// `sink`. With a token, authenticates first.
    pub fn connect(
        address: &str,
        token: Option<&str>,
        tls: Option<&TlsTrust>,
        mut sink: impl FnMut(Vec<PushedLine>) + Send + 'static,
    ) -> Result<Client, ShellError> {
        let (reader, writer) = transport::open(address, tls)?;
        let mut reader = BufReader::new(reader);
        let (replied, replies) = mpsc::channel();
        std::thread::spawn(move || {
            let mut pushed = Vec::new();
            let mut line = String::new();
            loop {
                line.clear();
                match reader.read_line(&mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                match serde_json::from_str::<ServerLine>(&line) {
                    Ok(ServerLine::Reply(reply)) => {
                        if replied.send(reply).is_err() {
                            break;
                        }
                    }
                    Ok(ServerLine::Pushed(line_pushed)) => {
                        let columns = row_columns(&line);
                        pushed.push(PushedLine {
                            pushed: line_pushed,
                            columns,
                        });
                    }
                    Err(_) => continue,
                }
                if !pushed.is_empty() && reader.buffer().is_empty() {
                    sink(std::mem::take(&mut pushed));
                }
            }
            if !pushed.is_empty() {
                sink(pushed);
            }
        });
        let mut client = Client {
            writer,
            replies,
            next_id: 1,
        };
        if let Some(token) = token {
            client.request(Auth {
                token: Some(token.to_string()),
            })?;
        }
        Ok(client)
    }

    /// Sends `request` and gives its reply; an error reply is an error.
    pub fn request<O: Op + Into<Request>>(&mut self, request: O) -> Result<O::Reply, ShellError> {
        self.request_line(request.into())?
            .into_reply()
            .map_err(ShellError::Server)
    }

    /// Sends `request` and gives its whole reply line (with `ok` and the `id`); an error
    /// reply is an error.
    pub fn request_line(&mut self, request: Request) -> Result<ReplyLine, ShellError> {
        let id = Value::from(self.next_id);
        self.next_id += 1;
        let line = RequestLine {
            id: Some(id.clone()),
            request,
        };
        let mut line = serde_json::to_string(&line)
            .map_err(|e| ShellError::Usage(format!("the request cannot be written: {e}")))?;
        line.push('\n');
        self.writer
            .write_all(line.as_bytes())
            .and_then(|()| self.writer.flush())
            .map_err(|e| ShellError::Connection(format!("the server is gone: {e}")))?;
        loop {
            let reply = self
                .replies
                .recv()
                .map_err(|_| ShellError::Connection("the server closed the connection".into()))?;
            if reply.id.as_ref() != Some(&id) {
                // A reply to an earlier request given up on.
                continue;
            }
            if reply.ok {
                return Ok(reply);
            }
            let error = reply
                .error
                .unwrap_or_else(|| "an unexplained error".to_string());
            return Err(ShellError::Server(error));
        }
    }
}
