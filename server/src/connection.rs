//! One client connection: requests in, replies and pushed rows out.
//!
//! Lines are read up to the configured maximum; a longer line is answered with an error
//! and skipped. Requests are answered in the order they came. A publish does not hold up
//! the requests after it: up to [`IN_FLIGHT`] requests wait for their answers at once
//! (publishes for their sync), and reading stops while that many do. Replies and pushed
//! rows go through one bounded queue to the socket, so a subscriber that reads slowly only
//! slows its own subscriptions, which read from the logs at its pace: the server holds no
//! more than the queues for it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use sluice_sql::session::alerts_query_name;
use sluice_sql::{Session, parse_statements};

use crate::core::{Core, Payload, StartAt, Target};
use crate::publisher::Publish;
use crate::{ServeError, Shared};

/// Lines waiting to be written to the socket.
const OUTGOING: usize = 256;
/// Requests of one connection waiting for their answers.
const IN_FLIGHT: usize = 64;
/// The most rows a subscription fetches at a time.
const FETCH_ROWS: usize = 512;

/// Tells a client over the connection limit so, and closes.
pub(crate) async fn refuse(mut socket: TcpStream, limit: usize) {
    let line = json!({"ok": false, "error": format!(
        "too many connections (the limit is {limit}): try again later")});
    let _ = socket.write_all(format!("{line}\n").as_bytes()).await;
    let _ = socket.shutdown().await;
}

pub(crate) async fn run(socket: TcpStream, shared: Arc<Shared>) {
    // Replies and rows go out at once, not held back to fill a packet.
    let _ = socket.set_nodelay(true);
    let (read, mut write) = socket.into_split();
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
        authenticated: shared.config.token.is_none(),
        shared,
        outgoing,
        replies,
        subscriptions: BTreeMap::new(),
        sent: None,
    };
    connection.serve(read).await;
    for (id, task) in std::mem::take(&mut connection.subscriptions) {
        task.abort();
        let _ = connection
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

/// What a request is answered with: now, or once the publisher has answered.
enum Answer {
    Now(Result<Value, ServeError>),
    Later(oneshot::Receiver<Result<Value, ServeError>>),
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
    shared: Arc<Shared>,
    authenticated: bool,
    outgoing: mpsc::Sender<String>,
    /// Replies in request order, to the task that writes them.
    replies: mpsc::Sender<Reply>,
    subscriptions: BTreeMap<u64, JoinHandle<()>>,
    /// To tell when the current request's reply is sent (a subscription starts pushing
    /// rows after its reply).
    sent: Option<oneshot::Sender<()>>,
}

impl Connection {
    async fn serve(&mut self, read: tokio::net::tcp::OwnedReadHalf) {
        let max = self.shared.config.max_line_bytes;
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
            let (id, answer, quit) = self.handle(text).await;
            let reply = Reply {
                id,
                answer,
                sent: self.sent.take(),
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

    /// Runs `work` on the core, off the connection's thread.
    async fn with_core<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Core) -> Result<T, ServeError> + Send + 'static,
    ) -> Result<T, ServeError> {
        let shared = Arc::clone(&self.shared);
        tokio::task::spawn_blocking(move || {
            let mut core = shared
                .core
                .lock()
                .map_err(|_| ServeError::Request("the server's state is unavailable".into()))?;
            work(&mut core)
        })
        .await
        .map_err(|e| ServeError::Request(e.to_string()))?
    }

    /// Runs `sql` on the core. A group of alert statements is parsed off the core, checked
    /// on it, compiled off it (publishes go on meanwhile), then applied on it.
    async fn execute_sql(&self, sql: String) -> Result<Vec<Value>, ServeError> {
        let text = sql.clone();
        let parsed = tokio::task::spawn_blocking(move || parse_statements(&text))
            .await
            .map_err(|e| ServeError::Request(e.to_string()))?;
        let statements = match parsed {
            Ok(statements) if Session::is_alert_group(&statements) => statements,
            // Errors and other statements are for the core to tell.
            _ => return self.with_core(move |core| core.execute_sql(&sql)).await,
        };
        let group = self
            .with_core(move |core| core.alert_group(statements))
            .await?;
        let (group, compiled) = tokio::task::spawn_blocking(move || {
            let compiled = group.compile();
            (group, compiled)
        })
        .await
        .map_err(|e| ServeError::Request(e.to_string()))?;
        let (replies, group) = self
            .with_core(move |core| Ok((core.apply_alert_group(&sql, &group, compiled), group)))
            .await?;
        // Thousands of parsed statements take milliseconds to free: not on the core.
        tokio::task::spawn_blocking(move || drop(group));
        replies
    }

    /// The request's id, the answer, and whether the connection ends.
    async fn handle(&mut self, text: &str) -> (Option<Value>, Answer, bool) {
        let request: Value = match serde_json::from_str(text) {
            Ok(request) => request,
            Err(error) => {
                let error = format!("the line is not JSON: {error}");
                return (None, Answer::Now(Err(ServeError::Request(error))), false);
            }
        };
        let Value::Object(request) = request else {
            let error = "a request is a JSON object with an \"op\"".to_string();
            return (None, Answer::Now(Err(ServeError::Request(error))), false);
        };
        let id = request.get("id").cloned();
        let op = request
            .get("op")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !self.authenticated && op != "auth" {
            let error = "authenticate first: {\"op\":\"auth\",\"token\":\"...\"}".to_string();
            return (id, Answer::Now(Err(ServeError::Request(error))), false);
        }
        let reply = match op {
            "quit" => return (id, Answer::Now(Ok(json!({"bye": true}))), true),
            "ping" => Ok(json!({"pong": true})),
            "auth" => self.auth(&request),
            "sql" => match text_field(&request, "sql") {
                Ok(sql) => self
                    .execute_sql(sql)
                    .await
                    .map(|results| json!({"results": results})),
                Err(error) => Err(error),
            },
            "register" => match (text_field(&request, "name"), text_field(&request, "sql")) {
                (Ok(name), Ok(sql)) => {
                    let answer = name.clone();
                    self.with_core(move |core| core.register(&name, &sql))
                        .await
                        .map(|()| json!({"registered": answer}))
                }
                (Err(error), _) | (_, Err(error)) => Err(error),
            },
            "cancel" => match text_field(&request, "name") {
                Ok(name) => {
                    let answer = name.clone();
                    self.with_core(move |core| core.cancel(&name))
                        .await
                        .map(|()| json!({"cancelled": answer}))
                }
                Err(error) => Err(error),
            },
            "list" => self.with_core(|core| Ok(core.names())).await,
            "stats" => self.with_core(|core| Ok(core.stats())).await,
            "publish" => {
                let answer = match self.publish(&request).await {
                    Ok(receiver) => Answer::Later(receiver),
                    Err(error) => Answer::Now(Err(error)),
                };
                return (id, answer, false);
            }
            "subscribe" => self.subscribe(&request).await,
            "unsubscribe" => match number_field(&request, "subscription") {
                Ok(subscription) => {
                    if let Some(task) = self.subscriptions.remove(&subscription) {
                        task.abort();
                    }
                    self.with_core(move |core| {
                        core.unsubscribe(subscription);
                        Ok(json!({"unsubscribed": subscription}))
                    })
                    .await
                }
                Err(error) => Err(error),
            },
            "ack" => {
                let fields = (
                    number_field(&request, "subscription"),
                    number_field(&request, "partition"),
                    number_field(&request, "offset"),
                );
                match fields {
                    (Ok(subscription), Ok(partition), Ok(offset)) => {
                        if !self.subscriptions.contains_key(&subscription) {
                            Err(ServeError::Request(format!(
                                "no subscription {subscription} on this connection"
                            )))
                        } else {
                            self.with_core(move |core| {
                                core.ack(subscription, partition as usize, offset)?;
                                Ok(json!({"acked": offset}))
                            })
                            .await
                        }
                    }
                    (Err(error), _, _) | (_, Err(error), _) | (_, _, Err(error)) => Err(error),
                }
            }
            "" => Err(ServeError::Request(
                "a request needs an \"op\" (ping, sql, register, cancel, list, publish, \
                 subscribe, ack, unsubscribe, stats, auth, quit)"
                    .into(),
            )),
            other => Err(ServeError::Request(format!(
                "unknown op '{other}' (ping, sql, register, cancel, list, publish, subscribe, \
                 ack, unsubscribe, stats, auth, quit)"
            ))),
        };
        (id, Answer::Now(reply), false)
    }

    fn auth(&mut self, request: &Map<String, Value>) -> Result<Value, ServeError> {
        let given = request.get("token").and_then(Value::as_str);
        match &self.shared.config.token {
            Some(token) if Some(token.as_str()) != given => {
                Err(ServeError::Request("the token is wrong".into()))
            }
            _ => {
                self.authenticated = true;
                Ok(json!({"authenticated": true}))
            }
        }
    }

    /// Queues a publish; gives where its answer will come.
    async fn publish(
        &self,
        request: &Map<String, Value>,
    ) -> Result<oneshot::Receiver<Result<Value, ServeError>>, ServeError> {
        let stream = text_field(request, "stream")?;
        let payload = match (
            request.get("events"),
            request.get("event"),
            request.get("csv"),
        ) {
            (Some(Value::Array(events)), None, None) => Payload::Events(events.clone()),
            (None, Some(event), None) => Payload::Events(vec![event.clone()]),
            (None, None, Some(Value::String(csv))) => Payload::Csv(csv.clone()),
            _ => {
                return Err(ServeError::Request(
                    "publish needs \"event\": {...}, \"events\": [{...}, ...] or \"csv\": \
                     \"header\\nrows...\""
                        .into(),
                ));
            }
        };
        let (reply, answer) = oneshot::channel();
        let publish = Publish {
            stream,
            payload,
            reply,
        };
        self.shared
            .publisher
            .send(publish)
            .await
            .map_err(|_| ServeError::Request("the server is shutting down".into()))?;
        Ok(answer)
    }

    async fn subscribe(&mut self, request: &Map<String, Value>) -> Result<Value, ServeError> {
        let named = |key: &str| match request.get(key) {
            Some(Value::String(name)) => Some(name.clone()),
            _ => None,
        };
        let targets = [
            named("stream").map(|s| Target::Stream(s.to_ascii_lowercase())),
            named("query").map(Target::Query),
            named("alert").map(|a| Target::Alert(a.to_ascii_lowercase())),
            named("alerts").map(|s| Target::Query(alerts_query_name(&s.to_ascii_lowercase()))),
        ];
        let mut targets = targets.into_iter().flatten();
        let target = match (targets.next(), targets.next()) {
            (Some(target), None) => target,
            _ => {
                return Err(ServeError::Request(
                    "subscribe needs one of \"stream\", \"query\", \"alert\" (one alert's \
                     firings) or \"alerts\" (every firing on a stream or view), naming it"
                        .into(),
                ));
            }
        };
        let start = match request.get("from") {
            None => StartAt::Latest,
            Some(Value::String(from)) if from == "earliest" => StartAt::Earliest,
            Some(Value::String(from)) if from == "latest" => StartAt::Latest,
            Some(Value::Number(offset)) if offset.as_u64().is_some() => {
                StartAt::Offset(offset.as_u64().unwrap_or_default())
            }
            Some(Value::Object(at)) if at.get("time").and_then(Value::as_i64).is_some() => {
                StartAt::Time(at.get("time").and_then(Value::as_i64).unwrap_or_default())
            }
            Some(other) => {
                return Err(ServeError::Request(format!(
                    "\"from\" is \"earliest\", \"latest\", an offset or {{\"time\": ms}}, \
                     not {other}"
                )));
            }
        };
        let group = match request.get("group") {
            None => None,
            Some(Value::String(group)) => Some(group.clone()),
            Some(other) => {
                return Err(ServeError::Request(format!(
                    "\"group\" is a name, not {other}"
                )));
            }
        };
        let (id, partitions) = self
            .with_core(move |core| {
                let id = core.subscribe(target, group, start)?;
                Ok((id, core.assigned(id)?))
            })
            .await?;
        let (sent, replied) = oneshot::channel();
        self.sent = Some(sent);
        let shared = Arc::clone(&self.shared);
        let outgoing = self.outgoing.clone();
        let task = tokio::spawn(async move {
            // Rows follow the reply that names the subscription.
            if replied.await.is_ok() {
                push(shared, id, outgoing).await;
            }
        });
        self.subscriptions.insert(id, task);
        Ok(json!({"subscription": id, "partitions": partitions}))
    }
}

/// Sends a subscription's rows as they come, as fast as the client takes them.
async fn push(shared: Arc<Shared>, id: u64, outgoing: mpsc::Sender<String>) {
    loop {
        // Registered before fetching, so an append during the fetch is not missed.
        let appended = shared.appended.notified();
        tokio::pin!(appended);
        appended.as_mut().enable();
        let fetching = Arc::clone(&shared);
        let fetched = tokio::task::spawn_blocking(move || {
            let mut core = fetching
                .core
                .lock()
                .map_err(|_| ServeError::Request("the server's state is unavailable".into()))?;
            core.fetch(id, FETCH_ROWS)
        })
        .await;
        let fetch = match fetched {
            Ok(Ok(fetch)) => fetch,
            Ok(Err(error)) => {
                let notice = json!({"subscription": id, "error": error.to_string()});
                let _ = outgoing.send(notice.to_string()).await;
                return;
            }
            Err(_) => return,
        };
        for warning in fetch.warnings {
            let notice = json!({"subscription": id, "warning": warning});
            if outgoing.send(notice.to_string()).await.is_err() {
                return;
            }
        }
        if fetch.rows.is_empty() {
            // Also look again now and then: a group's partitions may have moved.
            let _ = tokio::time::timeout(Duration::from_millis(200), appended).await;
            continue;
        }
        for row in fetch.rows {
            let line = format!(
                "{{\"subscription\":{id},\"partition\":{},\"offset\":{},\"row\":{}}}",
                row.partition, row.offset, row.row
            );
            if outgoing.send(line).await.is_err() {
                return;
            }
        }
    }
}

fn text_field(request: &Map<String, Value>, name: &str) -> Result<String, ServeError> {
    match request.get(name) {
        Some(Value::String(text)) => Ok(text.clone()),
        Some(other) => Err(ServeError::Request(format!(
            "\"{name}\" must be a string, not {other}"
        ))),
        None => Err(ServeError::Request(format!("the request needs \"{name}\""))),
    }
}

fn number_field(request: &Map<String, Value>, name: &str) -> Result<u64, ServeError> {
    match request.get(name) {
        Some(Value::Number(n)) if n.as_u64().is_some() => Ok(n.as_u64().unwrap_or_default()),
        Some(other) => Err(ServeError::Request(format!(
            "\"{name}\" must be a whole number, not {other}"
        ))),
        None => Err(ServeError::Request(format!("the request needs \"{name}\""))),
    }
}
