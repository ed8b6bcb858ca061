//! One client connection: request lines in, replies and pushed rows out. The requests
//! themselves are read and carried out in `op/`.
//!
//! Lines are read up to the configured maximum; a longer line is answered with an error
//! and skipped. Requests are answered in the order they came. A publish does not hold up
//! the requests after it: up to [`IN_FLIGHT`] requests wait for their answers at once
//! (publishes for their sync), and reading stops while that many do. Replies and pushed
//! rows go through one bounded queue to the socket, so a subscriber that reads slowly only
//! slows its own subscriptions, which read from the logs at its pace: the server holds no
//! more than the queues for it.

use std::net::IpAddr;
use std::sync::Arc;

use serde_json::{Map, Value, json};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, oneshot};

use crate::op::{self, Answer, Context, Handled};
use crate::{ServeError, Shared};

/// Lines waiting to be written to the socket.
const OUTGOING: usize = 256;
/// Requests of one connection waiting for their answers.
const IN_FLIGHT: usize = 64;

/// A connection's byte stream: a TCP socket, or TLS over one.
pub(crate) trait Socket: AsyncRead + AsyncWrite + Unpin + Send + 'static {}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> Socket for S {}

/// Tells a client over the connection limit so, and closes.
pub(crate) async fn refuse(mut socket: impl Socket, limit: usize) {
    let line = json!({"ok": false, "error": format!(
        "too many connections (the limit is {limit}): try again later")});
    let _ = socket.write_all(format!("{line}\n").as_bytes()).await;
    let _ = socket.shutdown().await;
}

/// Serves the client at `peer` until it goes.
pub(crate) async fn run(socket: impl Socket, peer: IpAddr, shared: Arc<Shared>) {
    let (read, mut write) = tokio::io::split(socket);
    let (outgoing, mut lines) = mpsc::channel::<String>(OUTGOING);
    let writer = tokio::spawn(async move {
        let mut buffer = String::new();
        while let Some(line) = lines.recv().await {
            // Whatever else is waiting goes in the same write.
            buffer.clear();
            buffer.push_str(&line);
            buffer.push('\n');
            while buffer.len() < 1 << 16 {
                let Ok(line) = lines.try_recv() else { break };
                buffer.push_str(&line);
                buffer.push('\n');
            }
            if write.write_all(buffer.as_bytes()).await.is_err() {
                break;
            }
        }
        let _ = write.shutdown().await;
    });
    let (replies, mut waiting) = mpsc::channel::<Reply>(IN_FLIGHT);
    let answers = outgoing.clone();
    let replier = tokio::spawn(async move {
        while let Some(mut reply) = waiting.recv().await {
            let line = reply.line().await;
            if answers.send(line).await.is_err() {
                break;
            }
            if let Some(sent) = reply.sent {
                let _ = sent.send(());
            }
        }
    });
    let mut connection = Connection {
        context: Context::new(shared, peer, outgoing),
        replies,
    };
    connection.serve(read).await;
    for (id, task) in std::mem::take(&mut connection.context.subscriptions) {
        task.abort();
        let _ = connection
            .context
            .with_core(move |core| {
                core.unsubscribe(id);
                Ok(())
            })
            .await;
    }
    drop(connection);
    let _ = replier.await;
    let _ = writer.await;
}

/// A reply waiting its turn to be written.
struct Reply {
    id: Option<Value>,
    answer: Answer,
    /// Told once the reply is on its way to the socket.
    sent: Option<oneshot::Sender<()>>,
}

impl Reply {
    async fn line(&mut self) -> String {
        let answer = match &mut self.answer {
            Answer::Now(answer) => std::mem::replace(answer, Ok(Value::Null)),
            Answer::Later(receiver) => receiver
                .await
                .unwrap_or_else(|_| Err(ServeError::Request("the server is shutting down".into()))),
        };
        let mut reply = match answer {
            Ok(Value::Object(fields)) => {
                let mut out = Map::new();
                out.insert("ok".into(), Value::Bool(true));
                out.extend(fields);
                Value::Object(out)
            }
            Ok(other) => json!({"ok": true, "result": other}),
            Err(error) => json!({"ok": false, "error": error.to_string()}),
        };
        if let (Some(id), Value::Object(fields)) = (self.id.take(), &mut reply) {
            fields.insert("id".into(), id);
        }
        reply.to_string()
    }
}

struct Connection {
    /// What the connection's requests share.
    context: Context,
    /// Replies in request order, to the task that writes them.
    replies: mpsc::Sender<Reply>,
}

impl Connection {
    async fn serve(&mut self, read: impl AsyncRead + Unpin) {
        let max = self.context.shared.config.max_line_bytes;
        let mut reader = BufReader::new(read);
        let mut line = Vec::new();
        loop {
            line.clear();
            let read = (&mut reader)
                .take(max as u64 + 1)
                .read_until(b'\n', &mut line)
                .await;
            match read {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            if line.last() != Some(&b'\n') && line.len() > max {
                self.send_error(format!(
                    "the line is over the limit of {max} bytes: it was skipped"
                ))
                .await;
                // Skip the rest of the line.
                loop {
                    line.clear();
                    match (&mut reader)
                        .take(1 << 16)
                        .read_until(b'\n', &mut line)
                        .await
                    {
                        Ok(0) | Err(_) => return,
                        Ok(_) if line.last() == Some(&b'\n') => break,
                        Ok(_) => {}
                    }
                }
                continue;
            }
            let text = String::from_utf8_lossy(&line);
            let text = text.trim();
            if text.is_empty() {
                continue;
            }
            let Handled { id, answer, quit } = op::handle(&mut self.context, text).await;
            let reply = Reply {
                id,
                answer,
                sent: self.context.sent.take(),
            };
            if self.replies.send(reply).await.is_err() || quit {
                return;
            }
        }
    }

    async fn send_error(&self, error: String) {
        let reply = Reply {
            id: None,
            answer: Answer::Now(Err(ServeError::Request(error))),
            sent: None,
        };
        let _ = self.replies.send(reply).await;
    }
}
