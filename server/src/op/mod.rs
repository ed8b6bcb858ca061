//! The requests of the line protocol (`docs/protocol.md`), one file per op: each holds the
//! request's fields, its reply and how the server carries it out. Here: [`Request`], the
//! requests tagged by `op`; reading a request line; and handing each request to its op.

mod ack;
mod answer;
mod auth;
mod cancel;
mod context;
mod fields;
mod list;
mod ping;
mod publish;
mod quit;
mod register;
mod sql;
mod stats;
mod subscribe;
mod unsubscribe;
mod wire;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use self::ack::{Ack, AckReply};
pub(crate) use self::answer::Answer;
pub use self::auth::{Auth, AuthReply};
pub use self::cancel::{Cancel, CancelReply};
pub(crate) use self::context::Context;
pub use self::list::{FailedEntry, List, ListReply};
pub use self::ping::{Ping, PingReply};
pub use self::publish::{Appended, Publish, PublishReply, RejectedEvent};
pub use self::quit::{Quit, QuitReply};
pub use self::register::{Register, RegisterReply};
pub use self::sql::{Sql, SqlReply};
pub use self::stats::{Stats, StatsReply};
pub use self::subscribe::{Start, Subscribe, SubscribeReply};
pub use self::unsubscribe::{Unsubscribe, UnsubscribeReply};
pub use self::wire::{Op, Pushed, ReplyLine, ServerLine};

/// Declares [`Request`] from its ops' names and request structs, with the list of the
/// names ([`Request::OPS`]) and the reading of an op's fields, so the three agree.
macro_rules! requests {
    ($($variant:ident = $name:literal,)*) => {
        /// A request, as the object of a request line: its `op` and that op's fields.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "op")]
        pub enum Request {
            $(#[serde(rename = $name)] $variant($variant),)*
        }

        impl Request {
            /// Every op's name, in the order `docs/protocol.md` lists them.
            pub const OPS: &'static [&'static str] = &[$($name),*];

            /// The value of the request's `op`.
            pub fn op_name(&self) -> &'static str {
                match self {
                    $(Request::$variant(_) => $name,)*
                }
            }

            /// Reads the fields of an `op` request; `None` when there is no such op.
            fn from_fields(op: &str, fields: Map<String, Value>) -> Option<Result<Request, String>> {
                match op {
                    $($name => Some(fields::read(fields).map(Request::$variant)),)*
                    _ => None,
                }
            }
        }

        $(impl From<$variant> for Request {
            fn from(request: $variant) -> Request {
                Request::$variant(request)
            }
        })*
    };
}

requests! {
    Ping = "ping",
    Auth = "auth",
    Sql = "sql",
    Register = "register",
    Cancel = "cancel",
    List = "list",
    Publish = "publish",
    Subscribe = "subscribe",
    Ack = "ack",
    Unsubscribe = "unsubscribe",
    Stats = "stats",
    Quit = "quit",
}

/// A request line: the request, and the `id` its reply carries back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestLine {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Value>,
    #[serde(flatten)]
    pub request: Request,
}

/// A line that is not a request, with what is wrong with it.
#[derive(Debug, Clone, PartialEq)]
pub struct BadLine {
    /// The line's `id`, when it was an object with one.
    pub id: Option<Value>,
    pub error: String,
}

impl RequestLine {
    /// Reads a request line as the server does, with the error it would answer.
    pub fn parse(text: &str) -> Result<RequestLine, BadLine> {
        Envelope::read(text)?.into_line()
    }
}

/// A request object before its op's fields are read.
struct Envelope {
    id: Option<Value>,
    op: Option<Value>,
    fields: Map<String, Value>,
}

impl Envelope {
    fn read(text: &str) -> Result<Envelope, BadLine> {
        let bad = |error: String| BadLine { id: None, error };
        let value: Value = serde_json::from_str(text)
            .map_err(|error| bad(format!("the line is not JSON: {error}")))?;
        let Value::Object(mut fields) = value else {
            return Err(bad("a request is a JSON object with an \"op\"".into()));
        };
        Ok(Envelope {
            id: fields.remove("id"),
            op: fields.remove("op"),
            fields,
        })
    }

    fn op(&self) -> Option<&str> {
        self.op.as_ref().and_then(Value::as_str)
    }

    fn into_line(self) -> Result<RequestLine, BadLine> {
        let ops = Request::OPS.join(", ");
        let parsed = match &self.op {
            None => Err(format!("a request needs an \"op\" ({ops})")),
            Some(Value::String(op)) => Request::from_fields(op, self.fields)
                .unwrap_or_else(|| Err(format!("unknown op '{op}' ({ops})"))),
            Some(other) => Err(format!("\"op\" names the request ({ops}), not {other}")),
        };
        match parsed {
            Ok(request) => Ok(RequestLine {
                id: self.id,
                request,
            }),
            Err(error) => Err(BadLine { id: self.id, error }),
        }
    }
}

/// What the connection does with a request line.
pub(crate) struct Handled {
    /// The request's `id`, for its reply.
    pub id: Option<Value>,
    pub answer: Answer,
    /// The connection ends after the reply.
    pub quit: bool,
}

impl Handled {
    fn error(id: Option<Value>, error: String) -> Handled {
        Handled {
            id,
            answer: Answer::Now(Err(crate::ServeError::Request(error))),
            quit: false,
        }
    }
}

/// Reads a request line and carries it out.
pub(crate) async fn handle(context: &mut Context, text: &str) -> Handled {
    let envelope = match Envelope::read(text) {
        Ok(envelope) => envelope,
        Err(bad) => return Handled::error(bad.id, bad.error),
    };
    if !context.authenticated && envelope.op() != Some("auth") {
        let error = "authenticate first: {\"op\":\"auth\",\"token\":\"...\"}".to_string();
        return Handled::error(envelope.id, error);
    }
    let RequestLine { id, request } = match envelope.into_line() {
        Ok(line) => line,
        Err(bad) => return Handled::error(bad.id, bad.error),
    };
    let quit = matches!(request, Request::Quit(_));
    let answer = request.carry_out(context).await;
    let quit = quit || context.closing;
    Handled { id, answer, quit }
}

impl Request {
    async fn carry_out(self, context: &mut Context) -> Answer {
        match self {
            Request::Ping(ping) => Answer::now(Ok(ping.carry_out())),
            Request::Auth(auth) => Answer::now(auth.carry_out(context).await),
            Request::Sql(sql) => Answer::now(sql.carry_out(context).await),
            Request::Register(register) => Answer::now(register.carry_out(context).await),
            Request::Cancel(cancel) => Answer::now(cancel.carry_out(context).await),
            Request::List(list) => Answer::now(list.carry_out(context).await),
            Request::Publish(publish) => match publish.carry_out(context).await {
                Ok(receiver) => Answer::Later(receiver),
                Err(error) => Answer::Now(Err(error)),
            },
            Request::Subscribe(subscribe) => Answer::now(subscribe.carry_out(context).await),
            Request::Ack(ack) => Answer::now(ack.carry_out(context).await),
            Request::Unsubscribe(unsubscribe) => Answer::now(unsubscribe.carry_out(context).await),
            Request::Stats(stats) => Answer::now(stats.carry_out(context).await),
            Request::Quit(quit) => Answer::now(Ok(quit.carry_out())),
        }
    }
}
