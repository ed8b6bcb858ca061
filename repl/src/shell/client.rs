//! A line-protocol client: requests and their replies, and pushed lines handed to a sink.
//!
//! A reader thread takes every line the server sends. Replies (lines with `ok`) go back to
//! the request waiting for them, in order; everything else (subscription rows, notices) is
//! handed to the sink in runs: the lines that arrived together are passed at once, so they
//! can be shown as one table.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::mpsc;

use serde_json::{Value, json};

use super::error::ShellError;
use super::display::row_columns;

/// A line the server pushed: a subscription's row (with its columns in order) or a notice.
pub struct Pushed {
    pub value: Value,
    pub columns: Vec<String>,
}

pub struct Client {
    writer: TcpStream,
    replies: mpsc::Receiver<Value>,
    next_id: u64,
}

impl Client {
    /// Connects to `address`; pushed lines go to `sink`. With a token, authenticates first.
    pub fn connect(
        address: &str,
        token: Option<&str>,
        mut sink: impl FnMut(Vec<Pushed>) + Send + 'static,
    ) -> Result<Client, ShellError> {
        let writer = TcpStream::connect(address)
            .map_err(|e| ShellError::Connection(format!("cannot connect to {address}: {e}")))?;
        let _ = writer.set_nodelay(true);
        let mut reader = BufReader::new(writer.try_clone()?);
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
                let Ok(value) = serde_json::from_str::<Value>(&line) else {
                    continue;
                };
                if value.get("ok").is_some() {
                    if replied.send(value).is_err() {
                        break;
                    }
                } else {
                    let columns = row_columns(&line);
                    pushed.push(Pushed { value, columns });
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
            client.request(json!({"op": "auth", "token": token}))?;
        }
        Ok(client)
    }

    /// Sends `request` and gives its reply's fields; an error reply is an error.
    pub fn request(&mut self, mut request: Value) -> Result<Value, ShellError> {
        let id = self.next_id;
        self.next_id += 1;
        request["id"] = json!(id);
        let mut line = request.to_string();
        line.push('\n');
        self.writer
            .write_all(line.as_bytes())
            .map_err(|e| ShellError::Connection(format!("the server is gone: {e}")))?;
        loop {
            let reply = self
                .replies
                .recv()
                .map_err(|_| ShellError::Connection("the server closed the connection".into()))?;
            if reply.get("id") != Some(&json!(id)) {
                // A reply to an earlier request given up on.
                continue;
            }
            if reply["ok"] == json!(true) {
                return Ok(reply);
            }
            let error = reply["error"].as_str().unwrap_or("an unexplained error");
            return Err(ShellError::Server(error.to_string()));
        }
    }
}
